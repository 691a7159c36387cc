"""Shiny for Python fixture: slider `n`, text output `result` showing n*2.

Needs nothing for the proxy: its assets are relative and its WebSocket URL is the page
path + `websocket/`, so a prefix-stripping proxy just works.
"""

from shiny import App, render, ui

app_ui = ui.page_fluid(
    ui.h2("Shiny for Python fixture"),
    ui.input_slider("n", "n", min=0, max=100, value=20),
    ui.output_text("result"),
)


def server(input, output, session):
    @render.text
    def result():
        return f"n*2 = {input.n() * 2}"


app = App(app_ui, server)
