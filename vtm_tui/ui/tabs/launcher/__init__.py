"""The Launcher tab: the catalog's tasks, the form of one, launch."""
