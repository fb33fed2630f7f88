"""fastrnn's version, apart from the package so that its modules can read it (fastrnn.deploy.io
writes it into files) without importing the package itself."""

__version__ = "0.1.0"
