"""The local live web view (`beamsearch serve`): a read-only Starlette app over a folder of runs.

`serve.py` beside this package is its public face (start it, or run it inside a run's own loop);
`runlog` is the one module here that knows what a run folder and its events look like.
"""
