"""The Textual UI: a viewer/controller over vtm_tui.core. Nothing here is imported by the core."""
