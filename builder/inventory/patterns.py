"""The inventory's text patterns: plain constants, so that he-launch's option checks use the
same ones without loading the inventory's records."""

FQDN_PATTERN = (
    r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))+$"
)
# A short host name (one label) or an FQDN, as /etc/hosts accepts.
HOST_NAME_PATTERN = (
    r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$"
)
MAC_PATTERN = r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"
REFERENCE_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|prompt)$"
SITE_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
INSTANCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
# A Linux interface name (IFNAMSIZ: 15 characters), not '.' or '..'.
INTERFACE_PATTERN = r"^(?!\.\.?$)[A-Za-z0-9_.-]{1,15}$"
