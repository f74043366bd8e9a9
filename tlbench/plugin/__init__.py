"""The plugin system: hookspecs, discovery, the typed registry, the contracts plugins implement, errors."""
