"""A threaded server with one classic mistake: one recv() taken for one
message.

TCP carries bytes, not messages: a line may arrive in pieces, and many
lines in one piece. This server answers each recv() as if it were one
whole line. `pingpong check` fails it on line/split, line/bytewise and
line/pipelined."""
import argparse, socket, threading

def serve(conn):
    with conn:
        while True:
            data = conn.recv(1024)  # THE MISTAKE: one recv is not one line
            if not data:
                return
            conn.sendall(b"pong\n" if data == b"ping\n" else data)

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, default=8000)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", ap.parse_args().port))
s.listen(128)
while True:
    conn, _ = s.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
