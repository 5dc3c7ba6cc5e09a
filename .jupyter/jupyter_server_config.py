"""JupyterLab for this project: `make lab` puts this folder first on JUPYTER_CONFIG_PATH.

- Pipeline notebooks open with their task's `upstream` and `product` paths injected
  (Ploomber's cell, for pipeline.yaml and pipeline.monitor.yaml) and are saved without
  that cell and without outputs, as git holds them (see src/nbops/build/lab.py).
- Nothing calls out: no news feed, no update check, the extension manager lists only
  what is installed (no PyPI search), and Ploomber's cloud extension is off (server
  part: jupyter_server_config.json here; JupyterLab part: labconfig/page_config.json).
"""

c = get_config()  # noqa: F821  (defined by Jupyter when it loads this file)

c.ServerApp.contents_manager_class = "nbops.build.lab.PipelineContentsManager"
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
c.LabApp.extension_manager = "readonly"
