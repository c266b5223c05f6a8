"""Root conftest: lets ``pytester`` run inner sessions with the plugin installed from this tree."""
