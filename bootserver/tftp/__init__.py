"""TFTP: read-only first-stage boot files (RFC 1350, 2347, 2348, 2349, 7440) on the shared loop."""

from bootserver.tftp.server import FileRequest, TFTPServer

__all__ = ["FileRequest", "TFTPServer"]
