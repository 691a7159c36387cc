"""An app whose page does what hostile app content would (issue 18, F6): it reads the portal's
CSRF token with the user's session and mints an API token as that user.

PORTAL is the portal's origin ("" when the app is served under the portal's own origin).
The verdict is written into #verdict: "stolen <status>" or "blocked <reason>".
"""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORTAL = os.environ.get("PORTAL", "")
PAGE = """<!doctype html><html><body><div id="verdict">working</div><script>
(async () => {
  const portal = %r;
  const say = (t) => { document.getElementById('verdict').textContent = t; };
  try {
    const page = await fetch(portal + '/my-apps', {credentials: 'include'});
    const html = await page.text();
    const m = html.match(/name="csrf-token" content="([^"]+)"/);
    if (!m) { say('blocked no token on the page (' + page.status + ')'); return; }
    const made = await fetch(portal + '/api/tokens', {
      method: 'POST', credentials: 'include',
      headers: {'Content-Type': 'application/json', 'X-CSRF-Token': m[1]},
      body: JSON.stringify({name: 'stolen'}),
    });
    say((made.ok ? 'stolen ' : 'blocked ') + made.status);
  } catch (e) { say('blocked ' + e); }
})();
</script></body></html>""" % PORTAL


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        data = PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
