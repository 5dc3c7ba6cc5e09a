"""What the CLI's larger commands do: each module is one command's implementation.

- ``init``: ``nbops init``, a new project from the reference pipeline;
- ``export``: ``nbops export airflow|argo``;
- ``reproduce``: ``nbops reproduce``;
- ``review``: ``nbops runs list|show|diff`` and ``nbops report``;
- ``score``: ``nbops score``, a file scored by a registered model in bounded memory.

The top layer below ``cli``: may import every other package; nothing imports it but
the CLI.
"""

from __future__ import annotations
