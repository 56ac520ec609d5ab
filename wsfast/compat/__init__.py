"""Drop-in replacements for other packages' module APIs, running on wsfast.

- :mod:`wsfast.compat.wsaccel`: wsaccel's ``xormask`` and ``utf8validator``
  modules, with the same classes, signatures, answers and errors.
"""
