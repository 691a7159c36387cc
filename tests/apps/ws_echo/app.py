"""A WebSocket echo app for proxy tests: every message comes back as it was sent, text as text
and binary as binary, of any size. A plain GET answers 200, so readiness checks pass.

Uses the `websockets` package of the test venv. Listens on 127.0.0.1:$PORT. With
`--ignore-sigterm` it keeps serving after SIGTERM, as a slow-to-stop app does, until the
supervisor kills it at the end of its grace period.
"""
import asyncio
import http
import os
import signal
import sys

from websockets.asyncio.server import serve


def plain_get(connection, request):
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return connection.respond(http.HTTPStatus.OK, "ws echo\n")
    return None


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def main():
    port = int(os.environ["PORT"])
    async with serve(echo, "127.0.0.1", port, process_request=plain_get, max_size=None):
        print(f"ws echo app listening on {port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    if "--ignore-sigterm" in sys.argv[1:]:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    asyncio.run(main())
