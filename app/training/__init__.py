"""Real training, the only package that imports TensorFlow: MNIST (``data``), the CNN (``model``), the fast DP-SGD
step (``dpsgd``) and the runner (``runner``). Importing the package or ``data`` loads no TensorFlow; a real run or the
warm-up does, once per process.
"""
