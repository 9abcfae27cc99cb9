"""Tools with a command line of their own: reproducers and bisection, entry points
(reach), benefit, and fault injection (sensitivity). They import the floors below."""
