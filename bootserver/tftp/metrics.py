"""TFTP metrics on the shared registry. Updated per transfer, never per packet."""

from prometheus_client import Counter, Gauge

from bootserver.metrics import REGISTRY

TRANSFERS = Counter("bootserver_tftp_transfers", "TFTP transfers that ended, by outcome",
                    ["outcome"], registry=REGISTRY)
BYTES = Counter("bootserver_tftp_bytes_sent", "File bytes acknowledged by TFTP clients", registry=REGISTRY)
ERRORS = Counter("bootserver_tftp_errors", "Refused requests, failed transfers and dropped packets, by reason",
                 ["reason"], registry=REGISTRY)
RETRANSMITS = Counter("bootserver_tftp_retransmits", "DATA blocks and OACKs sent again after a timeout",
                      registry=REGISTRY)
SESSIONS = Gauge("bootserver_tftp_sessions_open", "TFTP transfers in progress", registry=REGISTRY)
