"""vtm core: pure Python, usable without the UI. Never imports textual."""
