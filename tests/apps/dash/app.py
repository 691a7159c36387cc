"""Dash fixture (Flask backend): text input `name`, output div `greeting`.

Dash writes its asset and callback URLs from `requests_pathname_prefix`, so it must be the
public path (the browser's view), while routes stay at `/` because the proxy strips the prefix.
"""

import os

from dash import Dash, Input, Output, dcc, html

public_path = os.environ.get("SHINYPROXY_PUBLIC_PATH", "/")
if not public_path.endswith("/"):
    public_path += "/"

app = Dash(
    __name__,
    requests_pathname_prefix=public_path,
    routes_pathname_prefix="/",
    title="Dash fixture",
)
app.layout = html.Div(
    [
        html.H2("Dash fixture"),
        dcc.Input(id="name", type="text", value="world"),
        html.Div(id="greeting"),
    ]
)


@app.callback(Output("greeting", "children"), Input("name", "value"))
def greet(name):
    return f"Hello, {name or 'nobody'}!"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["PORT"]), debug=False)
