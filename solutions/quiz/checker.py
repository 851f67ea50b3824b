"""Trusted checker of the ``quiz``: the answer key and why each wrong option is wrong.

Runs in the grader process only (never mounted in the sandbox, never released). The kernel
only reports the ``answers`` dict as wire data; the letter is compared here.
"""

from __future__ import annotations

from grader.trusted import Context, Verdict
from tunelab.checks import quiz as Q

MODULE = "quiz"

KEY = {
    "q1": "b",
    "q10": "a",
    "q11": "d",
    "q12": "b",
    "q13": "b",
    "q14": "a",
    "q2": "b",
    "q3": "a",
    "q4": "a",
    "q5": "c",
    "q6": "b",
    "q7": "b",
    "q8": "c",
    "q9": "d",
}

WHY_WRONG = {
    "q1": {
        "a": "A sudden drop to about zero means the model has started memorising the training "
        "examples word for word: the overfitting pattern. Training loss near zero says "
        "nothing good about new prompts. Reread 04_monitoring, 'Recognising overfitting'.",
        "c": "A flat or chaotic curve is the no-convergence pattern: the model is not learning "
        "(dirty data, a learning rate that is too high, or a wrong format). Reread "
        "04_monitoring, 'Four patterns to recognise'.",
        "d": "Falling and then rising is divergence: the updates became too large and training "
        "went off the rails. Reread 04_monitoring, 'Four patterns to recognise'.",
    },
    "q10": {
        "b": "A plateau means more epochs buy almost nothing, only more cost and more risk of "
        "memorising the data. Reread 05_early_stopping, 'The plateau rule'.",
        "c": "Raising the learning rate on a plateau risks making the loss jump or diverge; "
        "avoid raising the learning rate to fix a curve. Reread 02_hyperparameters, "
        "'Learning rate and the multiplier'.",
        "d": "Extra epochs past the plateau cost money and push toward overfitting. Reread "
        "05_early_stopping, 'The plateau rule'.",
    },
    "q11": {
        "a": "That is one pass over the data; every epoch processes the whole data set again. "
        "Reread 06_checklist, 'Cost'.",
        "b": "Dividing by the epochs runs the formula backwards: each epoch adds the whole "
        "data set again. Reread 06_checklist, 'Cost'.",
        "c": "The batch size only groups examples into updates; it does not multiply the "
        "tokens processed. Reread 06_checklist, 'Cost'.",
    },
    "q12": {
        "a": "Too many epochs overfit and multiply the cost. Reread 06_checklist, 'Cost'.",
        "c": "An aggressive multiplier risks a jumping or diverging loss; it is not a way to "
        "save time. Reread 02_hyperparameters, 'Learning rate and the multiplier'.",
        "d": "Dirty or badly formatted data makes the loss refuse to converge, and a service "
        "will happily train on contradictory examples. Reread 06_checklist, 'Is the data "
        "valid?'.",
    },
    "q13": {
        "a": "A healthy curve falls clearly and then levels off at a low value; this one ends "
        "about where it started. Reread 04_monitoring, 'Four patterns to recognise'.",
        "c": "Overfitting shows a training loss falling to about zero; this training loss "
        "never gets anywhere near that. Reread 04_monitoring, 'Recognising overfitting'.",
        "d": "Underfitting is a smooth curve still falling when training stops; this one is "
        "chaotic with no net decrease, so more epochs would just repeat the chaos (and "
        "cost more). Reread 04_monitoring, 'Four patterns to recognise'.",
    },
    "q14": {
        "b": "Larger steps overshoot even more: the rise would start earlier and be steeper. "
        "Avoid raising the learning rate when a curve shows a problem. Reread "
        "02_hyperparameters, 'Learning rate and the multiplier'.",
        "c": "The loss is rising faster every epoch; more epochs only let it climb further "
        "(and cost more). Reread 04_monitoring, 'Four patterns to recognise'.",
        "d": "A training loss that rises means the model is getting worse at the very "
        "examples it trains on: training has gone off the rails. Reread 04_monitoring, "
        "'Four patterns to recognise'.",
    },
    "q2": {
        "a": "1–3 epochs is the advice for large data sets (more than about 10,000 examples). "
        "With only 300 examples so few passes usually underfit. Reread "
        "02_hyperparameters, 'How many epochs for how much data?'.",
        "c": "From about 10 epochs on, a small data set is at risk of being memorised, which "
        "is overfitting. Reread 02_hyperparameters, 'How many epochs for how much data?'.",
        "d": "More epochs are not always better: too many make the model memorise the training "
        "set and cost more (cost grows with the number of epochs). Reread "
        "02_hyperparameters, 'How many epochs for how much data?'.",
    },
    "q3": {
        "b": "5–10 epochs is the advice for small data sets (under about 500 examples). With "
        "20,000 examples that many passes mostly add cost and risk overfitting. Reread "
        "02_hyperparameters, 'How many epochs for how much data?'.",
        "c": "10 or more epochs risk overfitting even on small data sets, and on 20,000 "
        "examples would multiply the cost for nothing. Reread 02_hyperparameters, 'How "
        "many epochs for how much data?'.",
        "d": "The size of the data set is exactly what sets the number of epochs: small sets "
        "need more passes, large sets fewer. Reread 02_hyperparameters, 'How many epochs "
        "for how much data?'.",
    },
    "q4": {
        "b": "The number of passes over the data is set by epoch_count, not batch_size; a "
        "bigger batch just groups the same examples into fewer, larger updates. Reread "
        "02_hyperparameters, 'Batch size'.",
        "c": "It is the other way round: a larger batch holds more examples in memory at once, "
        "so it needs more memory. Reread 02_hyperparameters, 'Batch size'.",
        "d": "The learning rate is a separate hyperparameter; changing batch_size does not "
        "change it. Reread 02_hyperparameters, 'Learning rate and the multiplier'.",
    },
    "q5": {
        "a": "Aggressive would be a multiplier above 1.0 (such as 2.0). A multiplier of 0.1 "
        "shrinks each step, so the loss falls more slowly, not faster. Reread "
        "02_hyperparameters, 'Learning rate and the multiplier'.",
        "b": "The multiplier scales the size of each update, not the amount of data; every "
        "example is still used. Reread 02_hyperparameters, 'Learning rate and the "
        "multiplier'.",
        "d": "The number of steps comes from the examples, epoch_count and batch_size; the "
        "multiplier does not stop anything early. Reread 02_hyperparameters, 'Learning "
        "rate and the multiplier'.",
    },
    "q6": {
        "a": "Crawling down slowly is the sign of a learning rate that is too small. Reread "
        "02_hyperparameters, 'Learning rate and the multiplier'.",
        "c": "That is the healthy pattern; nothing is wrong with the learning rate. Reread "
        "04_monitoring, 'Four patterns to recognise'.",
        "d": "Low training loss with bad answers on new prompts is overfitting, usually from "
        "too many epochs, not a too-large learning rate. Reread 04_monitoring, "
        "'Recognising overfitting'.",
    },
    "q7": {
        "a": "The model does not exist yet when the call returns: it is still CREATING. Reread "
        "03_launching, 'Launching the job'.",
        "c": "Snapshots appear on the tuned model (tuning_task.snapshots) while the job runs; "
        "the call itself does not wait for them. Reread 03_launching, 'States: CREATING, "
        "ACTIVE, FAILED'.",
        "d": "The call returns at once; waiting is something you do explicitly, on the "
        "operation (operation.result()) or by polling the model. Reread 03_launching, "
        "'Launching the job'.",
    },
    "q8": {
        "a": "Launching again starts a second paid job; the first one is simply not finished "
        "yet. Reread 03_launching, 'States: CREATING, ACTIVE, FAILED'.",
        "b": "A model is only usable once it is ACTIVE; while CREATING there is nothing to "
        "answer your prompt yet. Reread 03_launching, 'States: CREATING, ACTIVE, FAILED'.",
        "d": "CREATING is the normal state of a running job, not an error; the failure state "
        "is FAILED. Reread 03_launching, 'States: CREATING, ACTIVE, FAILED'.",
    },
    "q9": {
        "a": "Training loss only measures the examples the model has already seen. Near zero "
        "it usually means memorisation; what counts is how the model does on new prompts. "
        "Reread 04_monitoring, 'Recognising overfitting'.",
        "b": "A too-small learning rate makes the loss crawl and stay high, not drop to almost "
        "zero. Reread 02_hyperparameters, 'Learning rate and the multiplier'.",
        "c": "A large data set makes memorisation harder, not easier: memorisation comes from "
        "too many passes over too few examples. Reread 04_monitoring, 'Recognising "
        "overfitting'.",
    },
}

CORRECT = {
    "q1": "q1 is correct. A smooth fall that settles on a plateau is the healthy pattern: the "
    "model picked up the regularities of the data quickly and then had little left to "
    "learn.",
    "q10": "q10 is correct. Once the loss has plateaued the remaining epochs add cost and "
    "overfitting risk but little learning, so you rerun with the epoch where the plateau "
    "began.",
    "q11": "q11 is correct. Cost = tokens in the data set × epochs = 2,000,000 × 5 = 10,000,000. "
    "The batch size does not change how many tokens are processed.",
    "q12": "q12 is correct. Tuning costs data-set tokens × epochs; if the base model already does "
    "the job, or the data is broken, that money is wasted.",
    "q13": "q13 is correct. After all its epochs the loss is still about where it started and "
    "lurches up and down: the model is not learning a consistent pattern. Dirty or "
    "contradictory data, a wrong format or a learning rate that is too high are the usual "
    "causes; more epochs will not help.",
    "q14": "q14 is correct. The training loss falls and then climbs ever faster: divergence. The "
    "steps are too large for this batch size, so the fix is a smaller learning rate.",
    "q2": "q2 is correct. Small data sets (under about 500 examples) need several passes for the "
    "model to pick up the pattern, so 5–10 epochs is the usual starting range.",
    "q3": "q3 is correct. With more than about 10,000 examples each pass already shows the model "
    "a lot of variety, so 1–3 epochs are enough, and every extra epoch costs the whole data "
    "set again.",
    "q4": "q4 is correct. The batch size is how many examples one update averages over: more "
    "examples give a smoother (less noisy) gradient estimate and need more memory per step.",
    "q5": "q5 is correct. The multiplier scales the standard learning rate: 1.0 is standard, 0.1 "
    "gentle (small steps, slow but safe), 2.0 aggressive.",
    "q6": "q6 is correct. Steps that are too large overshoot: the loss jumps, stays chaotic or "
    "even explodes instead of settling.",
    "q7": "q7 is correct. Tuning takes minutes to hours, so the call only starts the job and "
    "returns an operation you can wait on or poll.",
    "q8": "q8 is correct. CREATING means the job is still running. It ends in ACTIVE (ready to "
    "use) or FAILED (read the error and fix the cause).",
    "q9": "q9 is correct. A training loss near zero with bad answers on new prompts is "
    "memorisation: the model learned the examples, not the task.",
}


def _check(qid: str):
    def check(ctx: Context) -> Verdict:
        answers = ctx.probe("answers", {})
        if not isinstance(answers, dict):
            return Verdict.fail(f"{qid}: the grader could not read your answers dict.")
        value = answers.get(qid)
        problem = Q.format_problem(qid, value)
        if problem:
            return Verdict.fail(f"{qid}: {problem}")
        choice = Q.letter(value)
        if choice != KEY[qid]:
            return Verdict.fail(
                f"{qid}: ({choice}) is not the best answer. {WHY_WRONG[qid][choice]}"
            )
        return Verdict.ok(f"{qid} is correct. {CORRECT[qid]}")

    return check


CHECKS = {f"{qid}-check": _check(qid) for qid in Q.QUESTIONS}
