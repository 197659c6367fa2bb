#!/usr/bin/env python3
"""A Gatehouse client in Python with `websockets` (Debian: python3-websockets), on the root
endpoint `/`, in the two ways older clients use it:

  token:  python3 client.py --url ws://127.0.0.1:8080/ --token JWT [--to PEER --text hi]
          (the token in the Authorization header; the first frame is `connected` with the user)
  login:  python3 client.py --url ws://127.0.0.1:8080/ --username U --password P
          (no token: `connected` first, then an in-band `login` frame)

Each request carries an `id`; the reply echoes it. Incoming messages are acked with `ack`.
"""
import argparse
import asyncio
import json
import sys
import uuid

import websockets


def connect(url, headers):
    # The keyword for handshake headers changed in websockets 14.
    major = int(websockets.__version__.split(".")[0])
    key = "additional_headers" if major >= 14 else "extra_headers"
    return websockets.connect(url, subprotocols=["gatehouse.v1"], **{key: headers})


async def request(ws, frame):
    """Sends a frame with an id and returns the reply with that id (other frames are printed)."""
    frame["id"] = uuid.uuid4().hex
    await ws.send(json.dumps(frame))
    while True:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if reply.get("id") == frame["id"]:
            return reply
        await on_event(ws, reply)


async def on_event(ws, frame):
    print("event", json.dumps(frame))
    if frame.get("type") in ("message", "offline_message"):
        m = frame["message"]
        await ws.send(json.dumps({"type": "ack", "conversation_id": m["conversation_id"], "seq": m["seq"]}))


async def main(args):
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    async with connect(args.url, headers) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if first.get("type") == "error":
            print("refused:", first["error"], first["err_msg"])
            return 1
        print("connected", json.dumps(first["body"]))
        if not first["body"].get("user"):
            if not args.username:
                print("no token and no --username: nothing to log in with")
                return 2
            login = await request(ws, {"type": "login", "username": args.username, "password": args.password})
            if login["code"] != 200:
                print("login failed:", login.get("error"), login["err_msg"])
                return 1
            print("logged in as", login["body"]["user"]["id"])
        who = await request(ws, {"type": "whoami"})
        print("whoami", who["body"]["user"]["id"], who["body"]["user"]["kind"])
        if args.to:
            ack = await request(
                ws, {"type": "message", "to": args.to, "text": args.text, "client_msg_id": uuid.uuid4().hex}
            )
            if ack["code"] != 200:
                print("send failed:", ack.get("error"), ack["err_msg"])
                return 1
            print("sent seq", ack["body"]["seq"], "in", ack["body"]["conversation_id"])
        pong = await request(ws, {"type": "ping"})
        print("pong", pong["ts"])
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="ws://127.0.0.1:8080/")
    parser.add_argument("--token")
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument("--to")
    parser.add_argument("--text", default="hello from python")
    sys.exit(asyncio.run(main(parser.parse_args())))
