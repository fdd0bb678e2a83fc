"""Fetch, verify and mirror OS images into the assets folder (Flatcar releases and generic files)."""


class AssetError(Exception):
    """A fetch, verification or layout problem, with a message meant for the operator."""
