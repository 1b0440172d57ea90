"""kfd: a coding-agent harness that runs as a daemon.

The public surfaces are `kfd.protocol` (the bus wire types), `kfd.api` (the
plugin API) and `kfd.client` (the async client every frontend uses). Importing
``kfd`` itself loads nothing else, so command-line clients start fast.
"""

__version__ = "0.1.0"
