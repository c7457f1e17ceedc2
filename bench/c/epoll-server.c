/*
 * c-epoll: the benchmark's C reference server, the loop a C programmer would
 * write first, to put pingpong's figures beside.
 *
 *   epoll-server [--echo] PORT        (serves 127.0.0.1:PORT until killed)
 *
 * `make bench` builds it as target/peers/c-epoll and runs it as the peer
 * `--peer c-epoll='target/peers/c-epoll {port}'`.
 *
 * It speaks pingpong's protocol: newline-delimited lines, `ping` answered
 * `pong`, any other line echoed back unchanged (a trailing \r is kept out of
 * the match and in the reply), a last line without a newline answered at the
 * client's EOF, then the connection closed. `--echo` sends back every byte
 * as it comes (RFC 862), with no lines.
 *
 * The design is the one the README's figures describe, and nothing more:
 *
 * - one thread, one epoll set, level-triggered: a readiness the loop leaves
 *   unused is reported again by the next wait, so nothing needs draining;
 * - one read per readiness, into one 64 KiB buffer shared by every client:
 *   only a partial line is copied into the client's own buffer, so an idle
 *   client holds no buffer at all (its record is all it costs);
 * - every complete line of that read answered in one pass, then one
 *   optimistic send of all the replies: the socket usually has room, so
 *   EPOLLOUT is asked for only when the kernel took less (EAGAIN or a short
 *   send), and dropped again once the rest is gone;
 * - above 4 MiB of replies owed to a client, the loop stops reading it until
 *   they are sent (TCP's flow control then slows the client), so a client
 *   that never reads cannot grow the server.
 *
 * Left out on purpose, since a benchmark never meets them: limits on clients
 * or line length, idle timeouts, a spare fd for EMFILE (at EMFILE this loop
 * would spin: see docs/labs.md#no-spare-fd), graceful shutdown (the
 * benchmark kills it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_SIZE 65536
#define MAX_EVENTS 256
#define MAX_OWED (4u << 20)

/* What the loop keeps per client, indexed by fd (the kernel's cookie). */
struct client {
    char *in;          /* the start of a line still waiting for its newline */
    size_t in_len;
    char *out;         /* replies the kernel has not taken yet */
    size_t out_len, out_sent;
    int writing;       /* EPOLLOUT asked for */
    int reading;       /* EPOLLIN asked for (off above MAX_OWED) */
    int eof;           /* the client shut down its side */
};

static int ep, echo;
static struct client **clients;
static size_t nclients;
static char inbuf[READ_SIZE];

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void *grow(void *p, size_t n) {
    p = realloc(p, n);
    if (!p) die("realloc");
    return p;
}

/* Queue bytes for the client; the next flush sends them. */
static void owe(struct client *c, const char *bytes, size_t n) {
    c->out = grow(c->out, c->out_len + n);
    memcpy(c->out + c->out_len, bytes, n);
    c->out_len += n;
}

/* The protocol: one reply per line; `ping` (with \n or \r\n) gets `pong`. */
static void answer(struct client *c, const char *line, size_t n) {
    size_t body = n;
    if (body && line[body - 1] == '\n') body--;
    if (body && line[body - 1] == '\r') body--;
    if (body == 4 && memcmp(line, "ping", 4) == 0) {
        owe(c, "pong", 4);
        owe(c, line + 4, n - 4); /* the request's own \n or \r\n, if any */
    } else {
        owe(c, line, n);
    }
}

/* Answer every complete line of buf[0..n); return how many bytes that used. */
static size_t answer_lines(struct client *c, const char *buf, size_t n) {
    size_t used = 0;
    const char *nl;
    while ((nl = memchr(buf + used, '\n', n - used))) {
        size_t len = (size_t)(nl - (buf + used)) + 1;
        answer(c, buf + used, len);
        used += len;
    }
    return used;
}

static void watch(int fd, struct client *c) {
    struct epoll_event ev = {
        .events = (c->reading ? EPOLLIN : 0) | (c->writing ? EPOLLOUT : 0),
        .data.fd = fd,
    };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0) die("epoll_ctl MOD");
}

static void drop(int fd) {
    struct client *c = clients[fd];
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(c->in);
    free(c->out);
    free(c);
    clients[fd] = NULL;
}

/* Send what is owed. Returns -1 if the client is gone (and closed). */
static int flush(int fd, struct client *c) {
    while (c->out_sent < c->out_len) {
        ssize_t n = send(fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        if (n < 0) {
            drop(fd);
            return -1;
        }
        c->out_sent += (size_t)n;
    }
    if (c->out_sent == c->out_len) {
        /* All taken: an empty client holds no buffer. */
        free(c->out);
        c->out = NULL;
        c->out_len = c->out_sent = 0;
        if (c->eof) {
            drop(fd);
            return -1;
        }
    }
    int writing = c->out_len > 0;
    int reading = !c->eof && c->out_len - c->out_sent < MAX_OWED;
    if (writing != c->writing || reading != c->reading) {
        c->writing = writing;
        c->reading = reading;
        watch(fd, c);
    }
    return 0;
}

/* One read, the replies it makes, one optimistic send. */
static void serve_read(int fd, struct client *c) {
    ssize_t n = read(fd, inbuf, sizeof inbuf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0) {
        drop(fd);
        return;
    }
    if (n == 0) {
        c->eof = 1;
        if (c->in_len) answer(c, c->in, c->in_len); /* the last line, no newline */
        free(c->in);
        c->in = NULL;
        c->in_len = 0;
    } else if (echo) {
        owe(c, inbuf, (size_t)n);
    } else if (c->in_len == 0) {
        /* The common case: lines parsed where they lie, in the shared buffer. */
        size_t used = answer_lines(c, inbuf, (size_t)n);
        if (used < (size_t)n) {
            c->in_len = (size_t)n - used;
            c->in = grow(NULL, c->in_len);
            memcpy(c->in, inbuf + used, c->in_len);
        }
    } else {
        /* A line began in an earlier read: join the two, then parse. */
        c->in = grow(c->in, c->in_len + (size_t)n);
        memcpy(c->in + c->in_len, inbuf, (size_t)n);
        c->in_len += (size_t)n;
        size_t used = answer_lines(c, c->in, c->in_len);
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
        if (c->in_len == 0) {
            free(c->in);
            c->in = NULL;
        }
    }
    flush(fd, c);
}

static void accept_all(int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return; /* EAGAIN: no one left; anything else: try at the next wait */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if ((size_t)fd >= nclients) {
            size_t more = (size_t)fd * 2 + 64;
            clients = grow(clients, more * sizeof *clients);
            memset(clients + nclients, 0, (more - nclients) * sizeof *clients);
            nclients = more;
        }
        struct client *c = calloc(1, sizeof *c);
        if (!c) die("calloc");
        c->reading = 1;
        clients[fd] = c;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl ADD");
    }
}

int main(int argc, char **argv) {
    const char *port_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--echo") == 0) echo = 1;
        else port_arg = argv[i];
    }
    char *end;
    long port = port_arg ? strtol(port_arg, &end, 10) : 0;
    if (!port_arg || *end || port < 1 || port > 65535) {
        fprintf(stderr, "usage: %s [--echo] PORT   (serves 127.0.0.1:PORT)\n", argv[0]);
        return 2;
    }

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0) die("socket");
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {
        .sin_family = AF_INET,
        .sin_port = htons((unsigned short)port),
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
    };
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    /* The benchmark opens 10,000 connections at once. */
    if (listen(listener, 4096) < 0) die("listen");

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev) < 0) die("epoll_ctl ADD listener");
    fprintf(stderr, "c-epoll: listening on 127.0.0.1:%ld (pid %d)\n", port, (int)getpid());

    struct epoll_event ready[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, ready, MAX_EVENTS, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = ready[i].data.fd;
            if (fd == listener) {
                accept_all(listener);
                continue;
            }
            /* A client closed earlier in this batch has no record: skip it.
             * Had a newcomer been given its number since, the stale event
             * would cost that newcomer at most a read that finds EAGAIN:
             * every socket is non-blocking. */
            struct client *c = (size_t)fd < nclients ? clients[fd] : NULL;
            if (!c) continue;
            uint32_t events = ready[i].events;
            if (events & EPOLLOUT) {
                if (flush(fd, c) < 0) continue;
            }
            /* ERR and HUP count as readable: the read says what happened. */
            if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->reading) serve_read(fd, c);
        }
    }
}
