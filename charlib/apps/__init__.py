"""What people use: the drawing pad in JupyterLab and Voila (`canvas`) and the REST API with its
web pad (`serve`, serving `static/`).
Imports every stage before it, up to `charlib.inference`; nothing imports the apps but the
command line.
"""
