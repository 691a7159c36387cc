"""FastAPI fixture for pools: every answer says which instance gave it.

`/work?ms=N` answers after N ms, so a test can keep requests in flight; `/` answers at once.
The instance's id comes from `SHINYPROXY_PROXY_ID`, which vestibule sets for every instance.
"""

import asyncio
import os

import uvicorn
from fastapi import FastAPI

app = FastAPI()
INSTANCE = os.environ.get("SHINYPROXY_PROXY_ID", "unknown")


@app.get("/")
async def root():
    return {"instance": INSTANCE}


@app.get("/work")
async def work(ms: int = 0):
    await asyncio.sleep(min(ms, 60_000) / 1000)
    return {"instance": INSTANCE}


if __name__ == "__main__":
    host = os.environ.get("HOST", "127.0.0.1")
    uvicorn.run(app, host=host, port=int(os.environ["PORT"]), log_level="warning")
