"""Registry tab (placeholder until its issue lands)."""
from vtm_tui.ui.tabs.later import LaterPane


class RegistryPane(LaterPane):
    TITLE, PANE_ID = "Registry", "registry"
    COMING = ("A model registry on an FTP server or a local folder, with dev and release stages: "
              "publish, promote, browse and pull versioned bundles.")
    COMMANDS = ("registry", "publish", "promote", "pull")
