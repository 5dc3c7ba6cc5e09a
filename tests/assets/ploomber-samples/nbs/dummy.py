"""
This is a dummy file whose only purpose is to check that the custom jupyter
contents manager does not inject a cell here since this is not part of
the pipeline.yaml
"""

# + tags=["parameters"]
upstream = {"clean": None}
product = "output/dummy.ipynb"

# +
1 + 1

# +
2 + 2
