"""A selector server with one classic mistake: no limit on a line.

It keeps the start of a line until the newline comes: a client that never
sends one makes it grow without end. `pingpong check` fails it on
limit/huge-line."""
import argparse, selectors, socket

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, default=8000)
sel = selectors.DefaultSelector()
lsock = socket.socket()
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", ap.parse_args().port))
lsock.listen(128)
lsock.setblocking(False)
sel.register(lsock, selectors.EVENT_READ, data=None)
pending = {}
while True:
    for key, mask in sel.select():
        if key.data is None:
            conn, _ = lsock.accept()
            conn.setblocking(False)
            sel.register(conn, selectors.EVENT_READ, data="client")
            pending[conn] = []
            continue
        sock = key.fileobj
        try:
            recv = sock.recv(65536)
        except (BlockingIOError, ConnectionError):
            continue
        if not recv:
            sel.unregister(sock)
            del pending[sock]
            sock.close()
            continue
        parts = recv.split(b"\n")
        pending[sock].append(parts[0])  # THE MISTAKE: kept, however long
        for rest in parts[1:]:
            line = b"".join(pending[sock])
            sock.send((b"pong" if line == b"ping" else line) + b"\n")
            pending[sock] = [rest]
