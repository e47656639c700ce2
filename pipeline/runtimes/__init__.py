"""The runtimes a model runs on: their names (`names`, imported by the settings too), the
`Runner` every one of them gives, one module per runtime, and the choice among them."""
