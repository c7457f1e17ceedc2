"""A selector server as the course's first version of it is often written:
every client registered for EVENT_READ | EVENT_WRITE for good, so that
select() returns at once, for nothing, whenever a client is connected (the
always-writable lab, in Python). Lines: "ping" -> "pong", others echoed."""
import argparse, selectors, socket, types

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
port = ap.parse_args().port
sel = selectors.DefaultSelector()
lsock = socket.socket()
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", port))
lsock.listen()
lsock.setblocking(False)
sel.register(lsock, selectors.EVENT_READ, data=None)
while True:
    for key, mask in sel.select(timeout=None):
        if key.data is None:
            conn, addr = lsock.accept()
            conn.setblocking(False)
            sel.register(conn, selectors.EVENT_READ | selectors.EVENT_WRITE,
                         data=types.SimpleNamespace(inb=b"", outb=b""))
            continue
        sock, data = key.fileobj, key.data
        if mask & selectors.EVENT_READ:
            got = sock.recv(4096)
            if not got:
                sel.unregister(sock)
                sock.close()
                continue
            data.inb += got
            *lines, data.inb = data.inb.split(b"\n")
            for line in lines:
                data.outb += (b"pong" if line == b"ping" else line) + b"\n"
        if mask & selectors.EVENT_WRITE and data.outb:
            data.outb = data.outb[sock.send(data.outb):]
