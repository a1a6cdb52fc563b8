"""Answer-quality evaluation on the demo course (`make eval`, `python -m evals`).

A labelled set written for this project (`server/demo/eval_questions.json`: questions with the time range
where the lecture answers them, and the stretches quizzes are generated for) is run against a real server
started in-process on an embedded PostgreSQL, through the Python client, once with the offline engine and
once more with the configured OpenAI-compatible model when there is one. It reports:

- hit@3 of `SearchTranscripts` (course and video scope): a top-3 result overlaps the expected range;
- citation accuracy of `StreamChat`: an answer cites a range overlapping the expected one;
- validity of `GenerateQuiz` questions, judged by checks written here (see `evals.checks`).
"""
