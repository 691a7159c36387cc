"""Streamlit fixture: a slider and the square of its value.

Streamlit derives its base URL from the address bar, so behind a prefix-stripping proxy it
needs no `--server.baseUrlPath`. Streamlit generates its own element ids; the stable handles
are `key=` (rendered as the CSS class `st-key-<key>`) and HTML the app renders itself.
"""

import streamlit as st

st.title("Streamlit fixture")
n = st.slider("n", min_value=0, max_value=100, value=20, key="n")
# Streamlit cannot give a widget an id, but HTML it renders keeps one, so the output has a
# real id; the container key adds the class `st-key-result` as a second handle.
with st.container(key="result"):
    st.html(f'<p id="result">n squared = {n * n}</p>')
