"""A selector server with one classic mistake: a blocking sendall() inside
the event loop.

Its client sockets are left blocking, so sendall() to a client that does
not read waits until that client reads: the whole loop, and every other
client, waits with it. `pingpong check` fails it on conc/stuck-reader."""
import argparse, selectors, socket

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, default=8000)
sel = selectors.DefaultSelector()
lsock = socket.socket()
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", ap.parse_args().port))
lsock.listen(128)
sel.register(lsock, selectors.EVENT_READ, data=None)
inb = {}
while True:
    for key, mask in sel.select():
        if key.data is None:
            conn, _ = lsock.accept()  # THE MISTAKE: left blocking
            sel.register(conn, selectors.EVENT_READ, data="client")
            inb[conn] = b""
            continue
        sock = key.fileobj
        try:
            recv = sock.recv(65536)
        except ConnectionError:
            recv = b""
        if not recv:
            sel.unregister(sock)
            del inb[sock]
            sock.close()
            continue
        inb[sock] += recv
        *lines, inb[sock] = inb[sock].split(b"\n")
        try:
            sock.sendall(b"".join((b"pong" if l == b"ping" else l) + b"\n" for l in lines))
        except ConnectionError:
            pass
