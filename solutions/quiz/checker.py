"""Trusted checker of the ``quiz``: the answer key and why each wrong option is wrong.

Runs in the grader process only (never mounted in the sandbox, never released). The kernel
only reports the ``answers`` dict as wire data; the letter is compared here.

Variants: the key is held in *canonical* option order (the order of
``tunelab.checks.quiz_texts``); each student sees the options permuted by
``tunelab.checks.quiz.permutation(student, qid)``, and questions 10 and 11 with the numbers
of their row in ``tunelab.checks.quiz_variants`` (a table of numbers this file generates:
``python solutions/quiz/checker.py --write-variants``). The student is always the id the
submission was collected under (``ctx.student``), never what the notebook says, so letters
copied from a classmate are read under the copier's own permutation. The rules that turn a
row's numbers into its answer (the plateau rule, the cost formula) live here only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from grader.verdicts.trusted import Context, Verdict
from tunelab.checks import quiz as Q
from tunelab.i18n import tr

MODULE = "quiz"
#: The variants table: rows per computed question, drawn once from this seed.
VARIANT_SEED = 20261203
VARIANT_ROWS = 32
PLATEAU = 0.01
#: The computed questions: q10 applies the plateau rule, q11 the cost formula.
PLATEAU_Q, COST_Q = Q.COMPUTED

#: Canonical letters (the order of quiz_texts); q10 and q11 are computed from each row.
KEY = {
    "q1": "b",
    "q12": "b",
    "q13": "b",
    "q14": "a",
    "q2": "b",
    "q3": "a",
    "q4": "c",
    "q5": "d",
    "q6": "c",
    "q7": "a",
    "q8": "d",
    "q9": "d",
}

WHY_WRONG = {
    "q1": {
        "a": "A sudden drop to about zero is how memorising the training examples often shows "
        "(the overfitting pattern); short, fixed outputs can reach a near-zero loss honestly too, "
        "so it is a reason to test new prompts, not a sign of success. Reread 04_monitoring, "
        "'Recognising overfitting'.",
        "c": "A flat or chaotic curve is the no-convergence pattern: the model is not learning "
        "(dirty data, a learning rate that is too high, or a wrong format). Reread "
        "04_monitoring, 'Four patterns to recognise'.",
        "d": "Falling and then rising is divergence: the updates became too large and training "
        "went off the rails. Reread 04_monitoring, 'Four patterns to recognise'.",
    },
    "q10": {
        "c": (
            "Raising the learning rate on a plateau risks making the loss jump or diverge; "
            "avoid raising the learning rate to fix a curve. Reread 02_hyperparameters, "
            "'Learning rate and the multiplier'."
        ),
        "d": (
            "Extra epochs past the plateau cost time (and, where tuning is billed, money) and "
            "push toward overfitting. Reread 05_early_stopping, 'The plateau rule'."
        ),
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
        "a": (
            "The version is not the problem: google-generativeai converts the reply with "
            "to_dict(), so the model and its task are objects but every snapshot stays a plain "
            "dict. Reread 04_monitoring, 'Snapshots are dicts: the `snap.step` pitfall'."
        ),
        "b": (
            "Snapshots are dicts while the job runs and after it ends; the state changes "
            "nothing. Reread 04_monitoring, 'Snapshots are dicts: the `snap.step` pitfall'."
        ),
        "d": (
            "camelCase (meanLoss) is the raw REST JSON; the SDK's snapshot dicts use snake_case "
            "keys, and no dict supports attribute access. Reread 04_monitoring, 'Snapshots are "
            "dicts: the `snap.step` pitfall'."
        ),
    },
    "q5": {
        "a": (
            "The multiplier was used: 0.002 is 2 × the default rate. And learning_rate=2.0 "
            "would be 2,000 times that default, a sure divergence. Reread 03_launching, 'A job "
            "that fails — and how to read why'."
        ),
        "b": (
            "The multiplier scales the default learning rate, which the API documents as 0.001 "
            "or 0.0002 depending on the number of training examples: on a large dataset the "
            "same 2.0 can mean 0.0004. Reread 02_hyperparameters, 'Learning rate and the "
            "multiplier'."
        ),
        "c": (
            "0.002 is not the default: it is 2 × 0.001, so the multiplier was applied, and the "
            "emulator reports the rate it resolved to because the old SDK has no multiplier "
            "field. Reread 03_launching, 'A job that fails — and how to read why'."
        ),
    },
    "q6": {
        "a": (
            "That was true on the Gemini API, where you reran. Vertex AI (and OpenAI) save "
            "checkpoints during the job, and you can use the one from the best epoch without "
            "paying for a new job. Reread 05_early_stopping, 'Checkpoints: the best epoch "
            "without a rerun'."
        ),
        "b": (
            "After epoch 3 the validation loss climbs: the later epochs made the model worse on "
            "new prompts. Reread 04_monitoring, 'Recognising overfitting'."
        ),
        "d": (
            "That pays for 8 more epochs in the hope of moving the minimum, while the model you "
            "want already exists as a checkpoint. Reread 05_early_stopping, 'Checkpoints: the "
            "best epoch without a rerun'."
        ),
    },
    "q7": {
        "b": (
            "Local paths and lists of dicts are accepted; Cloud Storage URIs are how Vertex AI "
            "takes training data. The error comes from how the SDK parses the path. Reread "
            "03_launching, 'The `.jsonl` pitfall'."
        ),
        "c": (
            "Your dicts use snake_case text_input; the SDK translates them to the REST API's "
            "camelCase itself. Reread 03_launching, 'The `.jsonl` pitfall'."
        ),
        "d": (
            "A .json path is read with json.load, which reads ONE JSON document; a JSON Lines "
            "file is many, so that fails too. Reread 03_launching, 'The `.jsonl` pitfall'."
        ),
    },
    "q8": {
        "a": (
            "tuning_task has no error_message field, in the API or in the SDK: code that reads "
            "it raises AttributeError. Reread 03_launching, 'A job that fails — and how to read "
            "why'."
        ),
        "b": (
            "Snapshots hold step, epoch and loss: they show what happened before the job "
            "stopped, not the service's reason. Reread 03_launching, 'A job that fails — and "
            "how to read why'."
        ),
        "c": (
            "The state only says FAILED; the reason is in the operation's error. Reread "
            "03_launching, 'A job that fails — and how to read why'."
        ),
    },
    "q9": {
        "a": "Training loss only measures the examples the model has already seen. Near zero, "
        "with poor answers on new prompts, it means memorisation; what counts is how the model "
        "does on new prompts. "
        "Reread 04_monitoring, 'Recognising overfitting'.",
        "b": "A too-small learning rate makes the loss crawl and stay high, not drop to almost "
        "zero. Reread 02_hyperparameters, 'Learning rate and the multiplier'.",
        "c": "A large data set makes memorisation harder, not easier: memorisation comes from "
        "too many passes over too few examples. Reread 04_monitoring, 'Recognising "
        "overfitting'.",
    },
}

CORRECT = {
    "q1": "A smooth fall that settles on a plateau is the healthy pattern: the model picked up "
    "the regularities of the data quickly and then had little left to learn.",
    "q12": "Tuning costs data-set tokens × epochs; if the base model already does the job, or the "
    "data is broken, that money is wasted.",
    "q13": "After all its epochs the loss is still about where it started and lurches up and "
    "down: the model is not learning a consistent pattern. Dirty or contradictory data, a wrong "
    "format or a learning rate that is too high are the usual causes; more epochs will not help.",
    "q14": "The training loss falls and then climbs ever faster: divergence. The steps are too "
    "large for this batch size, so the fix is a smaller learning rate.",
    "q2": "Small data sets (under about 500 examples) need several passes for the model to pick "
    "up the pattern, so 5–10 epochs is the usual starting range.",
    "q3": "With more than about 10,000 examples each pass already shows the model a lot of "
    "variety, so 1–3 epochs are enough, and every extra epoch costs the whole data set again.",
    "q4": "google-generativeai turns the model and its task into objects, but every snapshot "
    "stays a plain dict: index it with keys, or build a DataFrame from the list.",
    "q5": "The multiplier scales the default learning rate (documented as 0.001 or 0.0002, "
    "depending on the dataset size; 0.001 here in the emulator), and the emulator reports the "
    "resolved rate because the old SDK has no multiplier field.",
    "q6": "With checkpoints the epoch-3 model already exists: use it instead of paying for a "
    "rerun. Rerunning is the answer only where a job delivers just its final model, as on the "
    "Gemini API.",
    "q7": "Any path that does not end in .json is read as CSV, so the 'columns' are pieces of the "
    "first line. Load the JSON Lines yourself and pass the list of dicts.",
    "q8": "The tuned model only says FAILED; the reason is the operation's error Status (code and "
    "message). The message's wording is the service's own (in the course, the emulator's).",
    "q9": "A training loss near zero with bad answers on new prompts is memorisation: the model "
    "learned the examples, not the task.",
}

#: The same explanations in Russian (for submissions of the Russian edition; ``Context.lang``).
WHY_WRONG_RU = {
    "q1": {
        "a": "Резкое падение почти до нуля часто означает, что модель заучила обучающие примеры "
        "(картина переобучения); на коротких однотипных ответах потери могут честно дойти почти до "
        "нуля, так что это повод проверить модель на новых запросах, а не признак успеха. "
        "Перечитайте урок 04_monitoring, раздел «Как распознать переобучение».",
        "c": "Плоская или хаотичная кривая — картина отсутствия сходимости: модель не учится "
        "(грязные данные, слишком высокая скорость обучения или неверный формат). Перечитайте "
        "урок 04_monitoring, раздел «Четыре формы кривой потерь».",
        "d": "Сначала спад, потом рост — это расхождение: шаги обновления стали слишком большими, "
        "и обучение пошло вразнос. Перечитайте урок 04_monitoring, раздел «Четыре формы кривой "
        "потерь».",
    },
    "q10": {
        "c": (
            "Если поднять скорость обучения на плато, потери могут начать скакать или разойтись; "
            "не исправляйте кривую повышением скорости обучения. Перечитайте урок "
            "02_hyperparameters, раздел «Скорость обучения и множитель»."
        ),
        "d": (
            "Лишние эпохи после плато стоят времени (а там, где дообучение платное, — денег) и "
            "подталкивают к переобучению. Перечитайте урок 05_early_stopping, раздел «Правило "
            "плато»."
        ),
    },
    "q12": {
        "a": "Слишком много эпох ведёт к переобучению и умножают стоимость. Перечитайте урок "
        "06_checklist, раздел «Стоимость».",
        "c": "Агрессивный множитель грозит скачущими или расходящимися потерями; сэкономить время "
        "так не выйдет. Перечитайте урок 02_hyperparameters, раздел «Скорость обучения и "
        "множитель».",
        "d": "На грязных или плохо оформленных данных функция потерь не сходится, а сервис "
        "спокойно обучится и на противоречивых примерах. Перечитайте урок 06_checklist, раздел "
        "«Данные в порядке?».",
    },
    "q13": {
        "a": "Здоровая кривая заметно падает, а потом выходит на низкое плато; эта же "
        "заканчивается примерно там, где началась. Перечитайте урок 04_monitoring, раздел "
        "«Четыре формы кривой потерь».",
        "c": "При переобучении потери на обучении падают почти до нуля; здесь они даже близко "
        "к нулю не подходят. Перечитайте урок 04_monitoring, раздел «Как распознать "
        "переобучение».",
        "d": "Недообучение — это гладкая кривая, которая всё ещё снижается, когда обучение "
        "заканчивается; эта же хаотична и в итоге не снижается, так что новые эпохи лишь "
        "повторят хаос (и обойдутся дороже). Перечитайте урок 04_monitoring, раздел «Четыре "
        "формы кривой потерь».",
    },
    "q14": {
        "b": "Более крупные шаги проскакивают минимум ещё сильнее: рост начнётся раньше и будет "
        "круче. Не повышайте скорость обучения, когда кривая показывает проблему. Перечитайте "
        "урок 02_hyperparameters, раздел «Скорость обучения и множитель».",
        "c": "Потери растут с каждой эпохой всё быстрее; новые эпохи лишь дадут им подняться "
        "выше (и обойдутся дороже). Перечитайте урок 04_monitoring, раздел «Четыре формы кривой "
        "потерь».",
        "d": "Рост потерь на обучении значит, что модель становится хуже на тех самых примерах, "
        "на которых учится: обучение пошло вразнос. Перечитайте урок 04_monitoring, раздел "
        "«Четыре формы кривой потерь».",
    },
    "q2": {
        "a": "1–3 эпохи советуют для больших наборов данных (больше примерно 10 000 примеров). "
        "На 300 примерах так мало проходов обычно ведёт к недообучению. Перечитайте урок "
        "02_hyperparameters, раздел «Сколько эпох на какой объём данных?».",
        "c": "Примерно с 10 эпох небольшой набор данных рискует быть заученным, а это "
        "переобучение. Перечитайте урок 02_hyperparameters, раздел «Сколько эпох на какой объём "
        "данных?».",
        "d": "Больше эпох — не всегда лучше: при слишком большом их числе модель заучивает "
        "обучающий набор, а стоимость растёт вместе с числом эпох. Перечитайте урок "
        "02_hyperparameters, раздел «Сколько эпох на какой объём данных?».",
    },
    "q3": {
        "b": "5–10 эпох советуют для небольших наборов (меньше примерно 500 примеров). На 20 000 "
        "примеров столько проходов в основном добавляют стоимость и риск переобучения. "
        "Перечитайте урок 02_hyperparameters, раздел «Сколько эпох на какой объём данных?».",
        "c": "10 и более эпох грозят переобучением даже на небольших наборах, а на 20 000 "
        "примеров просто умножат стоимость без пользы. Перечитайте урок 02_hyperparameters, "
        "раздел «Сколько эпох на какой объём данных?».",
        "d": "Именно размер набора данных и определяет число эпох: небольшим наборам нужно больше "
        "проходов, большим — меньше. Перечитайте урок 02_hyperparameters, раздел «Сколько эпох "
        "на какой объём данных?».",
    },
    "q4": {
        "a": (
            "Дело не в версии: google-generativeai преобразует ответ через to_dict(), поэтому "
            "модель и её задание — объекты, а каждый снимок остаётся обычным словарём. "
            "Перечитайте урок 04_monitoring, раздел «Снимки — это словари: ловушка `snap.step`»."
        ),
        "b": (
            "Снимки — словари и во время обучения, и после него; состояние задания тут ничего не "
            "меняет. Перечитайте урок 04_monitoring, раздел «Снимки — это словари: ловушка "
            "`snap.step`»."
        ),
        "d": (
            "camelCase (meanLoss) — это сырой JSON REST API; в словарях-снимках SDK ключи в "
            "snake_case, а обращаться к ключам словаря как к атрибутам нельзя. Перечитайте урок "
            "04_monitoring, раздел «Снимки — это словари: ловушка `snap.step`»."
        ),
    },
    "q5": {
        "a": (
            "Множитель как раз применился: 0,002 — это 2 × скорость по умолчанию. А "
            "learning_rate=2.0 была бы в 2000 раз больше этой скорости — верное расхождение. "
            "Перечитайте урок 03_launching, раздел «Задание завершилось с ошибкой: как узнать "
            "причину»."
        ),
        "b": (
            "Множитель масштабирует скорость обучения по умолчанию, а она, по документации API, "
            "равна 0,001 или 0,0002 в зависимости от числа обучающих примеров: на большом наборе "
            "тот же множитель 2,0 может означать 0,0004. Перечитайте урок 02_hyperparameters, "
            "раздел «Скорость обучения и множитель»."
        ),
        "c": (
            "0,002 — не значение по умолчанию: это 2 × 0,001, то есть множитель применился, а "
            "эмулятор сообщает итоговую скорость, потому что в старом SDK нет поля для "
            "множителя. Перечитайте урок 03_launching, раздел «Задание завершилось с ошибкой: "
            "как узнать причину»."
        ),
    },
    "q6": {
        "a": (
            "Так было в Gemini API, где задание приходилось перезапускать. Vertex AI (и OpenAI) "
            "сохраняют чекпойнты во время обучения, и можно взять чекпойнт лучшей эпохи, "
            "не оплачивая новое задание. Перечитайте урок 05_early_stopping, раздел «Контрольные "
            "точки (чекпойнты): лучшая эпоха без перезапуска»."
        ),
        "b": (
            "После эпохи 3 потери на валидации растут: поздние эпохи ухудшили модель на новых "
            "запросах. Перечитайте урок 04_monitoring, раздел «Как распознать переобучение»."
        ),
        "d": (
            "Так вы оплатите ещё 8 эпох в надежде сдвинуть минимум, хотя нужная модель уже есть "
            "в виде чекпойнта. Перечитайте урок 05_early_stopping, раздел «Контрольные "
            "точки (чекпойнты): лучшая эпоха без перезапуска»."
        ),
    },
    "q7": {
        "b": (
            "Локальные пути и списки словарей принимаются; URI Cloud Storage — это способ "
            "передать данные в Vertex AI. Ошибка возникает из-за того, как SDK разбирает путь. "
            "Перечитайте урок 03_launching, раздел «Ловушка `.jsonl`»."
        ),
        "c": (
            "В ваших словарях ключ text_input в snake_case; SDK сам переводит его в camelCase "
            "для REST API. Перечитайте урок 03_launching, раздел «Ловушка `.jsonl`»."
        ),
        "d": (
            "Путь .json читается через json.load, а тот читает ОДИН документ JSON; в файле JSON "
            "Lines их много, так что и это не сработает. Перечитайте урок 03_launching, раздел "
            "«Ловушка `.jsonl`»."
        ),
    },
    "q8": {
        "a": (
            "У tuning_task нет поля error_message — ни в API, ни в SDK: код, который его "
            "читает, падает с AttributeError. Перечитайте урок 03_launching, раздел «Задание "
            "завершилось с ошибкой: как узнать причину»."
        ),
        "b": (
            "В снимках есть шаг, эпоха и значение потерь: они показывают, что происходило до "
            "остановки задания, но не причину от сервиса. Перечитайте урок 03_launching, раздел "
            "«Задание завершилось с ошибкой: как узнать причину»."
        ),
        "c": (
            "Состояние говорит только FAILED; причина — в ошибке операции. Перечитайте урок "
            "03_launching, раздел «Задание завершилось с ошибкой: как узнать причину»."
        ),
    },
    "q9": {
        "a": "Потери на обучении измеряют только примеры, которые модель уже видела. Почти "
        "нулевые потери при плохих ответах на новые запросы означают заучивание; важно то, как "
        "модель справляется с новыми запросами. Перечитайте урок 04_monitoring, раздел «Как "
        "распознать переобучение».",
        "b": "При слишком малой скорости обучения потери ползут вниз и остаются высокими, а не "
        "падают почти до нуля. Перечитайте урок 02_hyperparameters, раздел «Скорость обучения "
        "и множитель».",
        "c": "Большой набор данных затрудняет заучивание, а не облегчает его: модель заучивает, "
        "когда слишком много раз проходит по слишком малому числу примеров. Перечитайте урок "
        "04_monitoring, раздел «Как распознать переобучение».",
    },
}

CORRECT_RU = {
    "q1": "Плавный спад с выходом на плато — здоровая картина: модель быстро уловила "
    "закономерности данных, и дальше учить ей было почти нечего.",
    "q12": "Дообучение стоит «токены набора × эпохи»; если базовая модель уже справляется или "
    "данные испорчены, эти деньги потрачены зря.",
    "q13": "После всех эпох потери примерно там же, где были в начале, и скачут вверх-вниз: "
    "модель не усваивает устойчивую закономерность. Обычные причины — грязные или "
    "противоречивые данные, неверный формат или слишком высокая скорость обучения; новые "
    "эпохи не помогут.",
    "q14": "Потери на обучении падают, а потом растут всё быстрее: это расхождение. Шаги слишком "
    "велики для этого размера батча, поэтому лечится это меньшей скоростью обучения.",
    "q2": "Небольшим наборам данных (меньше примерно 500 примеров) нужно несколько проходов, "
    "чтобы модель уловила закономерность, поэтому обычная отправная точка — 5–10 эпох.",
    "q3": "Когда примеров больше 10 000, каждый проход и так показывает модели много "
    "разнообразия, поэтому хватает 1–3 эпох, а каждая лишняя эпоха снова стоит целого набора "
    "данных.",
    "q4": "google-generativeai превращает модель и её задание в объекты, но каждый снимок "
    "остаётся обычным словарём: обращайтесь к нему по ключам или постройте DataFrame из списка.",
    "q5": "Множитель масштабирует скорость обучения по умолчанию (по документации 0,001 или "
    "0,0002 в зависимости от размера набора; в эмуляторе здесь 0,001), а эмулятор сообщает "
    "итоговую скорость, потому что в старом SDK нет поля для множителя.",
    "q6": "С чекпойнтами модель эпохи 3 уже есть: используйте её, а не платите за "
    "перезапуск. Перезапуск нужен только там, где задание отдаёт лишь финальную модель, как в "
    "Gemini API.",
    "q7": "Любой путь, который не оканчивается на .json, читается как CSV, и «столбцы» "
    "оказываются кусками первой строки. Прочитайте JSON Lines сами и передайте список "
    "словарей.",
    "q8": "Дообученная модель говорит лишь FAILED; причина — в Status ошибки операции (код и "
    "сообщение). Текст сообщения формулирует сам сервис (в курсе — эмулятор).",
    "q9": "Почти нулевые потери на обучении при плохих ответах на новые запросы — это "
    "заучивание: модель выучила примеры, а не задачу.",
}


# -- computed questions: the numbers table and the rules -----------------------------------
Q11_FORMULAS = {  # name -> (tokens, epochs, batch) -> value, for the wrong options
    "one_pass": lambda n, e, b: n,
    "per_epoch": lambda n, e, b: n / e,
    "times_batch": lambda n, e, b: n * e * b,
    "per_batch": lambda n, e, b: n * e / b,
    "batch_not_epochs": lambda n, e, b: n * b,
}
Q11_WHY = {
    "one_pass": (
        "{v} is one pass over the data; every epoch processes the whole data set again.",
        "{v} — это один проход по данным, а каждая эпоха заново обрабатывает весь набор данных.",
    ),
    "per_epoch": (
        "{v} divides by the epochs, which runs the formula backwards: each epoch adds the whole "
        "data set again.",
        "{v} — это деление на число эпох, оно переворачивает формулу: каждая эпоха добавляет "
        "весь набор данных ещё раз.",
    ),
    "times_batch": (
        "{v} also multiplies by the batch size, but the batch size only groups examples into "
        "updates; it does not multiply the tokens processed.",
        "{v} — это ещё и умножение на размер батча, но размер батча лишь группирует примеры в "
        "шаги обновления и не умножает число обработанных токенов.",
    ),
    "per_batch": (
        "{v} divides by the batch size, but the batch size only groups examples into updates; "
        "every token is still processed once per epoch.",
        "{v} — это деление на размер батча, но размер батча лишь группирует примеры в шаги "
        "обновления: каждый токен всё равно обрабатывается один раз за эпоху.",
    ),
    "batch_not_epochs": (
        "{v} multiplies by the batch size instead of the epochs: the number of passes over the "
        "data is what multiplies the tokens.",
        "{v} — это умножение на размер батча вместо числа эпох, а число токенов умножает число "
        "проходов по данным.",
    ),
}
REREAD_COST = (
    " Reread 06_checklist, 'Cost'.",
    " Перечитайте урок 06_checklist, раздел «Стоимость».",
)
REREAD_PLATEAU = (
    " Reread 05_early_stopping, 'The plateau rule'.",
    " Перечитайте урок 05_early_stopping, раздел «Правило плато».",
)


def plateau_epoch(losses: list[float]) -> int:
    """Lesson 5's rule: the last epoch that still improved the loss by at least 0.01."""
    gains = [round(a - b, 6) for a, b in zip(losses, losses[1:], strict=False)]
    return max(e for e, gain in enumerate(gains, start=2) if gain >= PLATEAU)


def _q10_row(rng: np.random.Generator) -> dict:
    """A 10-epoch curve whose gains are >= 0.02 up to its plateau epoch and < 0.009 after."""
    while True:
        plateau = int(rng.integers(3, 8))
        start, floor = float(rng.uniform(1.5, 2.4)), float(rng.uniform(0.25, 0.6))
        ratio = float(rng.uniform(0.45, 0.75))
        weights = ratio ** np.arange(plateau - 1)
        gains = list((start - floor) * weights / weights.sum())
        gains += list(rng.uniform(0.0, 0.008, size=10 - plateau))
        losses = [round(start, 3)]
        for gain in gains:
            losses.append(round(float(losses[-1] - gain), 3))
        steps = [round(a - b, 6) for a, b in zip(losses, losses[1:], strict=False)]
        early, late = steps[: plateau - 1], steps[plateau - 1 :]
        if min(early) >= 0.02 and max(late) <= 0.008 and min(late) >= 0 and losses[-1] > 0.1:
            break
    assert plateau_epoch(losses) == plateau
    other = plateau + int(rng.choice([-1, 1]))
    return {"losses": losses, "epochs": sorted([plateau, other])}


def _q11_row(rng: np.random.Generator) -> dict:
    """Tokens, epochs, batch size and four whole numbers: the cost and three wrong formulas."""
    while True:
        tokens = int(rng.integers(5, 60)) * 100_000
        epochs = int(rng.integers(2, 9))
        batch = int(rng.choice([4, 8, 16, 32]))
        if batch == epochs:
            continue
        right = tokens * epochs
        values = {name: f(tokens, epochs, batch) for name, f in Q11_FORMULAS.items()}
        wrong = {}
        for name in rng.permutation(sorted(Q11_FORMULAS)):
            value = values[str(name)]
            alike = [v for v in values.values() if v == value]
            # a whole number, not the answer, and made by one wrong formula only (so its
            # explanation is unambiguous)
            if value == int(value) and int(value) != right and len(alike) == 1:
                wrong[str(name)] = int(value)
        if len(wrong) >= 3:
            values = sorted([right, *list(wrong.values())[:3]])
            return {"tokens": tokens, "epochs": epochs, "batch": batch, "values": values}


def build_variants(seed: int = VARIANT_SEED, rows: int = VARIANT_ROWS) -> dict[str, list]:
    """The numbers of every variant of questions 10 and 11 (no key: the rules above are it)."""
    rng = np.random.default_rng(seed)
    return {
        "q10": [_q10_row(rng) for _ in range(rows)],
        "q11": [_q11_row(rng) for _ in range(rows)],
    }


def write_variants(path: Path | None = None) -> Path:
    """Write ``tunelab/checks/quiz_variants.py`` (numbers only) from :func:`build_variants`."""
    import json

    path = path or Path(__file__).resolve().parents[2] / "tunelab" / "checks" / "quiz_variants.py"
    table = (
        "{\n"
        + "".join(
            f"    {qid!r}: [\n"
            + "".join(f"        {json.dumps(row)},\n" for row in rows)
            + "    ],\n"
            for qid, rows in build_variants().items()
        )
        + "}"
    )
    path.write_text(
        "# ruff: noqa: E501  (generated rows, one per line)\n"
        '"""Numbers of questions 10 and 11, one row per variant (generated; do not edit).\n\n'
        "Made by the instructor's quiz checker (``--write-variants``). Numbers only: which\n"
        "option is right is decided by the grader from rules this package does not hold.\n"
        '"""\n\n'
        f"# fmt: off\nVARIANTS = {table}\n# fmt: on\n",
        encoding="utf-8",
    )
    return path


def correct_index(student: str, qid: str) -> int:
    """The canonical index of the right option in this student's variant."""
    if qid == PLATEAU_Q:
        row = Q.variant_row(student, qid)
        return row["epochs"].index(plateau_epoch(row["losses"]))
    if qid == COST_Q:
        row = Q.variant_row(student, qid)
        return row["values"].index(row["tokens"] * row["epochs"])
    return "abcd".index(KEY[qid])


def correct_letter(student: str, qid: str) -> str:
    """The letter under which this student sees the right option."""
    return Q.letter_for(student, qid, correct_index(student, qid))


def _computed_why(student: str, qid: str, canonical: int, lang: str) -> str:
    ru = lang == "ru"
    row = Q.variant_row(student, qid)
    if qid == COST_Q:
        n, e, b = row["tokens"], row["epochs"], row["batch"]
        value = row["values"][canonical]
        text = Q._whole(value, lang)
        for name, formula in Q11_FORMULAS.items():
            if formula(n, e, b) == value:
                return Q11_WHY[name][ru].format(v=text) + REREAD_COST[ru]
        return text + REREAD_COST[ru]  # unreachable for a generated row
    if canonical >= 2:
        return (WHY_WRONG_RU if ru else WHY_WRONG)[qid]["cd"[canonical - 2]]
    losses = row["losses"]
    plateau = plateau_epoch(losses)
    other = row["epochs"][canonical]

    def gain(epoch: int) -> str:
        return Q._decimal(losses[epoch - 2] - losses[epoch - 1], lang)

    if other > plateau:
        return (
            tr(
                "Epoch {o} improved the loss by only {g} (less than 0.01) on epoch {p}: the extra "
                "epoch bought nothing. The last epoch that still improved by 0.01 or more is {p}.",
                "Эпоха {o} улучшила потери по сравнению с эпохой {p} лишь на {g} (меньше 0,01): "
                "лишняя эпоха ничего не дала. Последняя эпоха, которая ещё улучшила потери хотя бы "
                "на 0,01, — {p}.",
                lang,
                o=other,
                p=plateau,
                g=gain(other),
            )
            + REREAD_PLATEAU[ru]
        )
    return (
        tr(
            "Epoch {p} still improved the loss by {g} (at least 0.01) on epoch {o}, so stopping "
            "after epoch {o} throws away an epoch that earned its keep.",
            "Эпоха {p} ещё улучшила потери по сравнению с эпохой {o} на {g} (не меньше 0,01), так "
            "что остановка после эпохи {o} выбрасывает полезную эпоху.",
            lang,
            o=other,
            p=plateau,
            g=gain(plateau),
        )
        + REREAD_PLATEAU[ru]
    )


def _computed_correct(student: str, qid: str, lang: str) -> str:
    row = Q.variant_row(student, qid)
    if qid == COST_Q:
        n, e = row["tokens"], row["epochs"]
        return tr(
            "Cost = tokens in the data set × epochs = {n} × {e} = {c}. The batch size does not "
            "change how many tokens are processed.",
            "Стоимость = токены набора данных × эпохи = {n} × {e} = {c}. Размер батча не меняет "
            "число обработанных токенов.",
            lang,
            n=Q._whole(n, lang),
            e=e,
            c=Q._whole(n * e, lang),
        )
    losses = row["losses"]
    p = plateau_epoch(losses)
    return tr(
        "The last epoch that still improved the loss by at least 0.01 is {p} (by {g}); the "
        "next one gained only {h}. Rerun with epoch_count={p}.",
        "Последняя эпоха, которая ещё улучшила потери хотя бы на 0,01, — {p} (на {g}); "
        "следующая дала лишь {h}. Перезапускайте с epoch_count={p}.",
        lang,
        p=p,
        g=Q._decimal(losses[p - 2] - losses[p - 1], lang),
        h=Q._decimal(losses[p - 1] - losses[p], lang),
    )


def variant_summary(student: str) -> dict[str, str]:
    """For the instructor's export: the variant's code, and per question the letter order
    (canonical letters as shown a-d), the right letter, and the numbers of q10 and q11."""
    out = {"variant": Q.variant_code(student)}
    for qid in Q.QUESTIONS:
        order = "".join("abcd"[i] for i in Q.permutation(student, qid))
        out[f"{qid}_order"] = order
        out[f"{qid}_key"] = correct_letter(student, qid)
    row10, row11 = Q.variant_row(student, "q10"), Q.variant_row(student, "q11")
    out["q10_losses"] = " ".join(f"{x:.3f}" for x in row10["losses"])
    out["q11_numbers"] = f"tokens={row11['tokens']} epochs={row11['epochs']} batch={row11['batch']}"
    return out


def _option_text(student: str, qid: str, canonical: int, lang: str) -> str:
    text = Q.canonical_texts(student, qid, lang)[1][canonical]
    return text if len(text) <= 90 else text[:87].rstrip() + "…"


def _check(qid: str):
    def check(ctx: Context) -> Verdict:
        lang = ctx.lang
        student = ctx.student
        answers = ctx.probe_once("answers", {})  # one read for all fourteen parts
        if not isinstance(answers, dict):
            return Verdict.fail(
                tr(
                    "{qid}: the grader could not read your answers dict.",
                    "{qid}: система оценивания не смогла прочитать ваш словарь answers.",
                    lang,
                    qid=qid,
                )
            )
        value = answers.get(qid)
        choice, problem = Q.read_letter(qid, value, lang)
        if problem or choice is None:
            return Verdict.fail(f"{qid}: {problem}")
        ru = lang == "ru"
        chosen = Q.canonical_of(student, qid, choice)
        right = correct_index(student, qid)
        if chosen != right:
            if qid in Q.COMPUTED:
                why = _computed_why(student, qid, chosen, lang)
            else:
                why = (WHY_WRONG_RU if ru else WHY_WRONG)[qid]["abcd"[chosen]]
            return Verdict.fail(
                tr(
                    "{qid}: ({choice}) «{text}» is not the best answer. {why}",
                    "{qid}: ({choice}) «{text}» — не лучший ответ. {why}",
                    lang,
                    qid=qid,
                    choice=choice,
                    text=_option_text(student, qid, chosen, lang),
                    why=why,
                )
            )
        if qid in Q.COMPUTED:
            correct = _computed_correct(student, qid, lang)
        else:
            correct = (CORRECT_RU if ru else CORRECT)[qid]
        return Verdict.ok(
            tr("{qid} is correct. {why}", "{qid}: верно. {why}", lang, qid=qid, why=correct)
        )

    return check


CHECKS = {f"{qid}-check": _check(qid) for qid in Q.QUESTIONS}

if __name__ == "__main__" and "--write-variants" in sys.argv:
    print(f"wrote {write_variants()}")
