"""Built-in prompt templates, installed as the package `beamsearch.prompts`."""
