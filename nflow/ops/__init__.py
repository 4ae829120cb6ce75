"""The ops of the tensor core, one file per family; :mod:`nflow.functional` is what users import."""
