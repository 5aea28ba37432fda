"""Ready settings files, installed as the package `beamsearch.configs`."""
