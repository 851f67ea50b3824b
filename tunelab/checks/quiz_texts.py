# ruff: noqa: E501  (a table of option texts: one string per option reads best)
"""The quiz's option texts in both editions, in their fixed (canonical) order.

Why here: each student sees the options in an order of their own (:func:`tunelab.checks.quiz.
permutation`), so the notebook draws them from this table instead of from markdown. The
table holds texts only: which option is right is known to the instructor's grader alone,
outside the notebook. Questions 10 and 11 have numbers of their own per student;
their templates are filled from :mod:`tunelab.checks.quiz_variants`.
"""

from __future__ import annotations

#: qid -> language -> the four option texts, canonical order (shown in a per-student order)
OPTION_TEXTS: dict[str, dict[str, tuple[str, str, str, str]]] = {
    "q1": {
        "en": (
            "The loss drops suddenly to almost exactly zero within a few steps.",
            "The loss falls smoothly and then levels off at a low plateau.",
            "The loss stays at roughly the same level, jumping up and down around it.",
            "The loss falls for a while and then climbs back up.",
        ),
        "ru": (
            "За несколько шагов потери резко падают почти ровно до нуля.",
            "Потери плавно снижаются, а затем выходят на низкое плато.",
            "Потери держатся примерно на одном уровне и скачут вокруг него.",
            "Потери какое-то время падают, а потом снова растут.",
        ),
    },
    "q2": {
        "en": (
            "1–3",
            "5–10",
            "20–30",
            "As many as the budget allows: more epochs always give a better model.",
        ),
        "ru": (
            "1–3",
            "5–10",
            "20–30",
            "Столько, сколько позволяет бюджет: чем больше эпох, тем лучше модель.",
        ),
    },
    "q3": {
        "en": (
            "1–3",
            "5–10",
            "10–20",
            "It does not matter: the number of examples has no effect on the epochs needed.",
        ),
        "ru": (
            "1–3",
            "5–10",
            "10–20",
            "Неважно: число примеров никак не влияет на то, сколько нужно эпох.",
        ),
    },
    "q4": {
        "en": (
            "Upgrade `google-generativeai`: older versions did not report snapshots yet.",
            "Wait until the job is `ACTIVE`: snapshots only get their attributes once training has finished.",
            'Index each snapshot as a dict — `snap["step"]`, `snap["mean_loss"]` — or turn the list into a table with `pd.DataFrame(snapshots)`.',
            "Write `snap.meanLoss`: the API's field names are camelCase.",
        ),
        "ru": (
            "Обновить `google-generativeai`: старые версии ещё не отдавали снимки.",
            "Дождаться состояния `ACTIVE`: атрибуты у снимков появляются только после окончания обучения.",
            'Обращаться к каждому снимку как к словарю — `snap["step"]`, `snap["mean_loss"]` — или превратить список в таблицу через `pd.DataFrame(snapshots)`.',
            "Писать `snap.meanLoss`: поля API называются в camelCase.",
        ),
    },
    "q5": {
        "en": (
            "The service ignored the multiplier and trained at a rate of its own; relaunch with `learning_rate=2.0` to force it.",
            "A multiplier of 2.0 always means a learning rate of 0.002, on any dataset and any base model.",
            "The SDK lost the multiplier on the way, and the job trained at the default rate.",
            "It is the rate the multiplier resolved to: 2 × the default learning rate, which the emulator sets to 0.001 for this dataset (the API documents the default as 0.001 or 0.0002, depending on the dataset size).",
        ),
        "ru": (
            "Сервис проигнорировал множитель и обучал со своей скоростью; перезапустите с `learning_rate=2.0`, чтобы её задать.",
            "Множитель 2,0 всегда означает скорость обучения 0,002 — на любом наборе данных и любой базовой модели.",
            "SDK потерял множитель по дороге, и задание обучалось со скоростью по умолчанию.",
            "Это скорость, в которую превратился множитель: 2 × скорость обучения по умолчанию, которую эмулятор для этого набора данных считает равной 0,001 (по документации API скорость по умолчанию — 0,001 или 0,0002 в зависимости от размера набора).",
        ),
    },
    "q6": {
        "en": (
            "Rerun with `epoch_count=3`: a tuning job only ever delivers its final model.",
            "Keep the final model: after 8 epochs it is the best-trained one.",
            "Use the checkpoint saved after epoch 3 (make it the tuned model's default): no new job is needed.",
            "Rerun with 8 epochs and a lower multiplier, so that the validation minimum moves to epoch 8.",
        ),
        "ru": (
            "Перезапустить с `epoch_count=3`: задание дообучения всегда отдаёт только финальную модель.",
            "Оставить финальную модель: после 8 эпох она обучена лучше всех.",
            "Взять чекпойнт, сохранённый после эпохи 3 (сделать его чекпойнтом по умолчанию для дообученной модели): новое задание не нужно.",
            "Перезапустить на 8 эпох с меньшим множителем, чтобы минимум на валидации сдвинулся на эпоху 8.",
        ),
    },
    "q7": {
        "en": (
            '`google-generativeai` parses only paths ending in `.json` as JSON and reads every other path as CSV, so its "columns" are fragments of the first line. Read the lines yourself and pass the list of dicts.',
            "Training files must be uploaded to Cloud Storage first; local paths are not supported.",
            "The key must be `textInput` (camelCase), as in the REST API.",
            "The file name is the problem: rename it to `support.json` and the SDK reads it line by line.",
        ),
        "ru": (
            "`google-generativeai` разбирает как JSON только пути, оканчивающиеся на `.json`, а любой другой путь читает как CSV, поэтому его «столбцы» — обрывки первой строки. Прочитайте строки сами и передайте список словарей.",
            "Обучающие файлы сначала нужно загрузить в Cloud Storage; локальные пути не поддерживаются.",
            "Ключ должен называться `textInput` (camelCase), как в REST API.",
            "Всё дело в имени файла: переименуйте его в `support.json`, и SDK прочитает его построчно.",
        ),
    },
    "q8": {
        "en": (
            "In `genai.get_tuned_model(name).tuning_task.error_message`.",
            "In the last snapshot: its `mean_loss` carries the error text.",
            "In `model.state`: the state name is the reason.",
            'In the long-running operation\'s `error` (`code` and `message`): `operations.get_operation(name).exception()` with the SDK, `op["error"]["message"]` in the REST JSON.',
        ),
        "ru": (
            "В `genai.get_tuned_model(name).tuning_task.error_message`.",
            "В последнем снимке: его `mean_loss` содержит текст ошибки.",
            "В `model.state`: причина — это имя состояния.",
            'В `error` длительной операции (`code` и `message`): `operations.get_operation(name).exception()` в SDK, `op["error"]["message"]` в JSON из REST.',
        ),
    },
    "q9": {
        "en": (
            "It is healthy: the lower the training loss the better the model.",
            "The learning rate was too small.",
            "The data set is too large for the model.",
            "Overfitting: the model memorised the training examples instead of learning the general pattern.",
        ),
        "ru": (
            "Всё в порядке: чем ниже потери на обучении, тем лучше модель.",
            "Скорость обучения была слишком маленькой.",
            "Набор данных слишком велик для модели.",
            "Переобучение: модель заучила обучающие примеры вместо того, чтобы усвоить общую закономерность.",
        ),
    },
    "q12": {
        "en": (
            "Set the largest epoch_count the budget allows, so the job only runs once.",
            "Validate the data and try the base model on your prompts: maybe prompting alone is good enough.",
            "Set learning_rate_multiplier to 2.0 so the job finishes sooner.",
            "Skip validation: the tuning service rejects bad data anyway.",
        ),
        "ru": (
            "Задать самый большой epoch_count, какой позволяет бюджет, чтобы запускать задание только один раз.",
            "Проверить данные и испытать базовую модель на своих запросах: возможно, хватит одного промптинга.",
            "Поставить learning_rate_multiplier равным 2,0, чтобы задание закончилось быстрее.",
            "Пропустить проверку: сервис дообучения всё равно отклонит плохие данные.",
        ),
    },
    "q13": {
        "en": (
            "Healthy training: keep the model.",
            "No convergence: the loss hardly falls and jumps around, so check the data (contradictions, format) and the learning rate before training again.",
            "Overfitting: rerun with fewer epochs.",
            "Underfitting: rerun with more epochs.",
        ),
        "ru": (
            "Обучение здоровое: модель можно оставить.",
            "Нет сходимости: потери почти не падают и скачут, поэтому проверьте данные (противоречия, формат) и скорость обучения, прежде чем обучать снова.",
            "Переобучение: перезапустите с меньшим числом эпох.",
            "Недообучение: перезапустите с большим числом эпох.",
        ),
    },
    "q14": {
        "en": (
            "Lower the learning rate multiplier (for example back to 1.0).",
            "Raise the multiplier further so the model gets past the bump faster.",
            "Add more epochs so the loss has time to come back down.",
            "Nothing: a rising loss means the model is still learning.",
        ),
        "ru": (
            "Уменьшить множитель скорости обучения (например, вернуть 1,0).",
            "Ещё поднять множитель, чтобы модель быстрее проскочила горб.",
            "Добавить эпох, чтобы потери успели снова снизиться.",
            "Ничего: рост потерь значит, что модель всё ещё учится.",
        ),
    },
}

#: Question 10 (the plateau rule): its stem and options, filled per student.
Q10 = {
    "en": {
        "stem": "A 10-epoch run's per-epoch average losses are **{losses}** (epochs 1 to 10). "
        "Apply lesson 5's plateau rule: rerun with the last epoch that still improved the loss by "
        "at least 0.01 on the epoch before it. Which `epoch_count` do you choose for the rerun?",
        "options": (
            "`epoch_count={low}`.",
            "`epoch_count={high}`.",
            "`epoch_count=10` again, with `learning_rate_multiplier=2.0` to push the loss off the plateau.",
            "None: keep the 10-epoch model, extra epochs never hurt.",
        ),
    },
    "ru": {
        "stem": "Средние потери по эпохам у запуска на 10 эпох: **{losses}** (эпохи с 1-й по "
        "10-ю). Примените правило плато из урока 5: перезапуск с последней эпохой, которая ещё "
        "улучшила потери хотя бы на 0,01 по сравнению с предыдущей. Какой `epoch_count` вы "
        "выберете для перезапуска?",
        "options": (
            "`epoch_count={low}`.",
            "`epoch_count={high}`.",
            "Снова `epoch_count=10`, но с `learning_rate_multiplier=2.0`, чтобы столкнуть потери с плато.",
            "Никакой: оставить модель с 10 эпохами, лишние эпохи никогда не вредят.",
        ),
    },
}

#: Question 11 (the cost formula): its stem, filled per student; options are four numbers.
Q11 = {
    "en": "Your training set has **{tokens}** tokens and you tune with `epoch_count={epochs}`, "
    "`batch_size={batch}`. How many training tokens does the job process (the number platforms "
    "that charge for tuning bill you for)?",
    "ru": "В вашем обучающем наборе **{tokens}** токенов, и вы дообучаете с "
    "`epoch_count={epochs}`, `batch_size={batch}`. Сколько обучающих токенов обработает задание "
    "(именно за это число платформы с платным дообучением выставляют счёт)?",
}
