"""Request classifier: jieba tokenisation and a scikit-learn pipeline (later issue)."""
