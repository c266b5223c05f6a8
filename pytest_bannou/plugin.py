"""pytest glue: options, markers, fixtures registration, batching, reporting."""
