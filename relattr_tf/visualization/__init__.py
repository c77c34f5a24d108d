"""Looking inside trained models: contact sheets of saliency, attention, DeepSTN's boxes, the
CVAE's sweeps and ATTIC's generated pairs (`relattr_tf.visualize`), and ranking a user's own
images (`relattr_tf.rank`)."""
