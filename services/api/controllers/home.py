"""The page at `/`: what a person who opens the server's address in a browser lands on."""

from __future__ import annotations

from litestar import get
from litestar.enums import MediaType

HOME = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Community Ledger</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto;
         padding: 0 1rem; line-height: 1.5; color: #222; }
  code { background: #f2f2f2; padding: 0 0.2em; }
  li { margin: 0.4rem 0; }
</style>
</head>
<body>
<h1>Community Ledger</h1>
<p>An event-sourced record of the work that holds a community together: every
contribution, introduction, mention and recognition is an immutable event, and
projections fold them into member profiles, counts and the connection graph.
This server is its HTTP API.</p>
<ul>
  <li><a href="/schema">API documentation</a>: every operation, with examples
      (<a href="/schema/openapi.json">OpenAPI document</a>)</li>
  <li><a href="/health">/health</a>: the process is up;
      <a href="/ready">/ready</a>: the database answers and the schema is current</li>
  <li><a href="/v1/projections">/v1/projections</a>: each projection's checkpoint, lag and
      state; needs an API key with the <code>read</code> scope, sent as
      <code>Authorization: Bearer &lt;token&gt;</code>
      (<code>community-ledger keys create --name me --scope read</code>)</li>
  <li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
</ul>
</body>
</html>
"""


@get("/", media_type=MediaType.HTML, include_in_schema=False, sync_to_thread=False)
def home() -> str:
    """Not an API operation, so not in the OpenAPI document."""
    return HOME
