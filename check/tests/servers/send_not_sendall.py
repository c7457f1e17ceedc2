"""A selector server with one classic mistake: send() taken for sendall().

send() on a non-blocking socket takes what fits in the kernel's buffer and
returns how much that was. This server ignores the count: whatever did not
fit is lost. `pingpong check` fails it on flow/slow-reader."""
import argparse, selectors, socket, types

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, default=8000)
port = ap.parse_args().port
sel = selectors.DefaultSelector()
lsock = socket.socket()
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", port))
lsock.listen(128)
lsock.setblocking(False)
sel.register(lsock, selectors.EVENT_READ, data=None)
while True:
    for key, mask in sel.select():
        if key.data is None:
            conn, _ = lsock.accept()
            conn.setblocking(False)
            sel.register(conn, selectors.EVENT_READ, data=types.SimpleNamespace(inb=b""))
            continue
        sock, data = key.fileobj, key.data
        try:
            recv = sock.recv(65536)
        except ConnectionError:
            recv = b""
        if not recv:
            sel.unregister(sock)
            sock.close()
            continue
        data.inb += recv
        *lines, data.inb = data.inb.split(b"\n")
        out = b"".join((b"pong" if l == b"ping" else l) + b"\n" for l in lines)
        try:
            sock.send(out)  # THE MISTAKE: the rest of `out` is dropped
        except (BlockingIOError, ConnectionError):
            pass
