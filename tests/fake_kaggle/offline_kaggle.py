"""The official `kaggle` CLI, offline: only its network call is replaced, by canned Kaggle answers.

Everything else is the installed `kaggle` package itself: its argument parser, its
credential lookup, its `kernel-metadata.json` checks, the request it builds and how it
prints the answer. What would have gone over the wire is `requests`'
`HTTPAdapter.send`; here that records the request and answers as Kaggle's API does.

Run as `python offline_kaggle.py ARGS...` (tests put a `kaggle` shim on PATH that does).
Environment:
  OFFLINE_KAGGLE_LOG       file that gets one JSON line per request: {"argv", "url", "body"}
  OFFLINE_KAGGLE_VERSION   the version number SaveKernel answers (default 1)
  OFFLINE_KAGGLE_LOG_TEXT  the session log ListKernelSessionOutput and the log stream answer
  OFFLINE_KAGGLE_PUSH_ERROR  set: SaveKernel answers with this `error` (the CLI prints "Kernel push error")
  OFFLINE_KAGGLE_STATUSES  comma list GetKernelSessionStatus answers in turn (the last repeats), e.g.
                           QUEUED,RUNNING,COMPLETE; FAIL drops the connection instead
  OFFLINE_KAGGLE_FAILURE   the failureMessage answered with ERROR / CANCEL_ACKNOWLEDGED
"""

from __future__ import annotations

import json
import os
import sys
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict


def _record(request: requests.PreparedRequest) -> dict:
    body = json.loads(request.body) if request.body else None
    entry = {"argv": sys.argv[1:], "url": urlparse(request.url).path, "body": body}
    with open(os.environ["OFFLINE_KAGGLE_LOG"], "a") as log:
        log.write(json.dumps(entry) + "\n")
    return entry


def _save_kernel(body: dict) -> tuple[str, object]:
    if os.environ.get("OFFLINE_KAGGLE_PUSH_ERROR"):
        return "application/json", {"error": os.environ["OFFLINE_KAGGLE_PUSH_ERROR"]}
    slug = body.get("slug", "")
    return "application/json", {
        "ref": f"/code/{slug}",
        "url": f"https://www.kaggle.com/code/{slug}",
        "versionNumber": int(os.environ.get("OFFLINE_KAGGLE_VERSION", "1")),
    }


def _log_events() -> str:
    events = [
        {"stream_name": "stdout", "time": 0.1 * i, "data": line + "\n"}
        for i, line in enumerate(os.environ.get("OFFLINE_KAGGLE_LOG_TEXT", "").splitlines())
    ]
    return "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: END_OF_LOG\n\n"


def _status() -> dict:
    """The next of OFFLINE_KAGGLE_STATUSES, counting the status requests recorded so far (this one included)."""
    answers = os.environ.get("OFFLINE_KAGGLE_STATUSES", "COMPLETE").split(",")
    with open(os.environ["OFFLINE_KAGGLE_LOG"]) as log:
        asked = sum(json.loads(line)["url"].endswith("/GetKernelSessionStatus") for line in log)
    state = answers[min(asked, len(answers)) - 1]
    if state == "FAIL":
        raise requests.exceptions.ConnectionError(
            "HTTPSConnectionPool(host='api.kaggle.com', port=443): Max retries exceeded (offline stand-in)"
        )
    failure = os.environ.get("OFFLINE_KAGGLE_FAILURE") if state in ("ERROR", "CANCEL_ACKNOWLEDGED") else None
    return {"status": state, **({"failureMessage": failure} if failure else {})}


def _answer(entry: dict) -> tuple[int, str, object]:
    """(status, content type, body) for one request, by the API method its URL names."""
    url = entry["url"]
    if url.endswith("/GetKernelSessionStatus"):
        return 200, "application/json", _status()
    if url.endswith("/SaveKernel"):
        return 200, *_save_kernel(entry["body"] or {})
    if url.endswith("/ListKernelSessionOutput"):
        return 200, "application/json", {"log": os.environ.get("OFFLINE_KAGGLE_LOG_TEXT", "")}
    if "/kernels/logs/stream/" in url:
        return 200, "text/event-stream", _log_events()
    return 404, "application/json", {"code": 404, "message": f"offline stand-in has no answer for {url}"}


def send(self: HTTPAdapter, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
    """What `HTTPAdapter.send` would return from Kaggle, without a socket."""
    status, content_type, body = _answer(_record(request))
    response = requests.Response()
    response.status_code, response.url, response.request = status, request.url, request
    response.headers = CaseInsensitiveDict({"Content-Type": content_type})
    response._content = (body if isinstance(body, str) else json.dumps(body)).encode()
    response._content_consumed = True
    response.encoding = "utf-8"
    return response


def main() -> None:
    HTTPAdapter.send = send
    from kaggle.cli import main as kaggle_main

    sys.argv[0] = "kaggle"
    kaggle_main()


if __name__ == "__main__":
    main()
