"""The course's simple server, with its one limit: one client at a time.

It accepts a client and serves it until it leaves; the next client waits
in the listen queue meanwhile. `pingpong check` fails it on
conc/second-client."""
import argparse, socket

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, default=8000)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", ap.parse_args().port))
s.listen(128)
while True:
    conn, _ = s.accept()
    with conn, conn.makefile("rb") as lines:
        try:
            for line in lines:  # THE LIMIT: nobody else is served meanwhile
                body = line.rstrip(b"\n")
                conn.sendall((b"pong" if body == b"ping" else body) + b"\n")
        except ConnectionError:
            pass
