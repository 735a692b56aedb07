"""Start the daphne reference for bench/run: create the database (users
testuser, alice, bob, carol with chanc-bench's default passwords; room 1
"General" and rooms 2..101, all four users members), then serve on
HOST:PORT (port 0: any free port) and print `listening on http://H:P/`.
The listen backlog is 1024 (Twisted's default, 50, resets connections when
chanc-bench opens 64 at a time; node and lws use 511 and more).

    BENCH_DB=/tmp/x.sqlite3 /usr/bin/python3 serve.py [--host H] [--port P]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchchat.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402

from benchchat.models import Room  # noqa: E402

USERS = [("testuser", "testpass123"), ("alice", "alice-pass-1"), ("bob", "bob-pass-1"),
         ("carol", "carol-pass-1")]


def setup_db():
    call_command("migrate", run_syncdb=True, verbosity=0)
    if User.objects.exists():
        return
    users = [User.objects.create_user(username=u, password=p) for u, p in USERS]
    rooms = [Room.objects.create(pk=1, name="General", slug="general")]
    rooms += [Room.objects.create(pk=i + 1, name="bench-%d" % i, slug="bench-%d" % i)
              for i in range(1, 101)]
    for r in rooms:
        r.members.add(*users)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    a = ap.parse_args()
    setup_db()
    from daphne.server import Server
    from benchchat.asgi import application

    server = None

    def ready():
        for host, port in server.listening_addresses:
            print("listening on http://%s:%d/" % (host, port), flush=True)

    server = Server(application, endpoints=["tcp:port=%d:interface=%s:backlog=1024" % (a.port, a.host)],
                    ready_callable=ready, verbosity=0)
    server.run()


if __name__ == "__main__":
    main()
