"""Request classifier: jieba segmentation, a linear tf-idf model, kind and taxonomy suggestions.

Runtime API: `classifier.model.Classifier.load(dir).predict(text) -> Prediction`.
Training and promotion: `classifier.train`. Commands: `classifier.cli`.
"""
