"""Who answers model calls. The engine never imports this package; `beamsearch.app` wires it in."""
