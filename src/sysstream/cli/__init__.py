"""The ``sysstream`` command line and its terminal client."""
