"""Other frameworks' weights in and out: Keras layer weights, ONNX export, and the gate
orders of both.  Loading ONNX models is ``fastrnn.onnx``.
"""
