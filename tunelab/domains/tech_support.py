"""Customer tech-support Q&A for "Brightwave", a fictional broadband and devices company.

Questions come from templates (router resets, Wi-Fi, printers, VPN, email sync, passwords,
two-factor codes, Bluetooth pairing, system updates) with product and platform slots, and
optional greetings and sign-offs. Each question has one canned correct answer whose
details depend on the slots (where the reset button is, which settings menu to open), so a
model only answers a new question right if it generalised rather than memorised.
``degrade`` returns a plausible but wrong answer: right topic with another product's
details, another topic's answer, or a generic brush-off.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Collection
from functools import lru_cache
from typing import Any

import numpy as np

from tunelab.domains import Domain
from tunelab.domains._grammar import Grammar, Pair, Slot, SlotValue, Template

__all__ = ["DOMAIN", "GRAMMAR", "TechSupportDomain", "generate_pairs"]


# ----------------------------------------------------------------------- slots
def _product(label: str, /, **details: Any) -> SlotValue:
    """A slot value questions and answers both call by its name (``surface == value``)."""
    return SlotValue(surface=label, value=label, **details)


ROUTERS = Slot(
    "router",
    (
        _product(
            "NetBox 300",
            reset="on the back panel, between the power socket and the yellow LAN ports",
            hold=10,
            admin="http://192.168.1.1",
            label="on the sticker underneath the router",
            bands="2.4 GHz only",
        ),
        _product(
            "NetBox 500",
            reset="on the underside, inside the small hole marked RESET",
            hold=15,
            admin="http://192.168.0.1",
            label="on the pull-out card at the front of the router",
            bands="2.4 GHz and 5 GHz",
        ),
        _product(
            "NetBox Mesh",
            reset="on the base of the main unit (the one plugged into the wall socket)",
            hold=20,
            admin="the Brightwave Home app (Devices > Mesh)",
            label="on the sticker on the base of the main unit",
            bands="2.4 GHz, 5 GHz and a dedicated mesh backhaul",
        ),
        _product(
            "AirLink X2",
            reset="on the left side, next to the SIM card slot",
            hold=8,
            admin="http://10.0.0.1",
            label="on the inside of the battery cover",
            bands="2.4 GHz and 5 GHz",
        ),
    ),
    frozenset({"AirLink X2"}),
)

PRINTERS = Slot(
    "printer",
    (
        _product(
            "PrintPro 200",
            wifi="hold the Wi-Fi button on the control panel for 3 seconds until it blinks",
            door="lift the scanner lid and open the front cover",
            model_id="PP200",
        ),
        _product(
            "PrintPro 450",
            wifi="tap Settings > Network > Wi-Fi Setup Wizard on the touchscreen",
            door="open the rear access door and pull out the duplex unit",
            model_id="PP450",
        ),
        _product(
            "PhotoJet 7",
            wifi="press Menu, choose Wireless, then Reconnect on the display",
            door="remove the photo tray and open the bottom cover",
            model_id="PJ7",
        ),
        _product(
            "InkJet Mini",
            wifi="hold the Wi-Fi and Cancel buttons together for 5 seconds",
            door="open the top cover and slide the cartridge carriage to the left",
            model_id="IJM",
        ),
    ),
    frozenset({"InkJet Mini"}),
)

SYSTEMS = Slot(
    "os",
    (
        _product(
            "Windows 11",
            printers="Settings > Bluetooth & devices > Printers & scanners",
            bluetooth="Settings > Bluetooth & devices > Add device > Bluetooth",
            vpn="Settings > Network & internet > VPN",
            update="Settings > Windows Update",
            restart="Start > Power > Restart",
        ),
        _product(
            "macOS",
            printers="System Settings > Printers & Scanners",
            bluetooth="System Settings > Bluetooth",
            vpn="System Settings > VPN",
            update="System Settings > General > Software Update",
            restart="Apple menu > Restart",
        ),
        _product(
            "Android",
            printers="Settings > Connected devices > Connection preferences > Printing",
            bluetooth="Settings > Connected devices > Pair new device",
            vpn="Settings > Network & internet > VPN",
            update="Settings > System > Software update",
            restart="holding the power button and tapping Restart",
        ),
        _product(
            "iOS",
            printers="the Share button > Print (AirPrint) in the app you are printing from",
            bluetooth="Settings > Bluetooth",
            vpn="Settings > General > VPN & Device Management",
            update="Settings > General > Software Update",
            restart="holding the side button and a volume button, then sliding to power off",
        ),
        _product(
            "ChromeOS",
            printers="Settings > Advanced > Print and scan > Printers",
            bluetooth="Quick Settings > Bluetooth",
            vpn="Settings > Network > Add connection > Add built-in VPN",
            update="Settings > About ChromeOS > Check for updates",
            restart="the clock > Power > Restart",
        ),
    ),
    frozenset({"ChromeOS"}),
)

EMAIL_APPS = Slot(
    "email_app",
    (
        _product(
            "Outlook",
            settings="File > Account Settings > Account Settings, select the account, Repair",
            refresh="Send / Receive > Update Folder",
        ),
        _product(
            "Thunderbird",
            settings="Account Settings > Server Settings",
            refresh="right-click the Inbox > Properties > Repair Folder",
        ),
        _product(
            "Apple Mail",
            settings="Mail > Settings > Accounts > Server Settings",
            refresh="Mailbox > Synchronize",
        ),
        SlotValue(
            surface="the Brightwave Mail app",
            value="Brightwave Mail",
            settings="Menu > Settings > your account > Sync settings",
            refresh="pull down on the inbox to refresh",
        ),
    ),
)

SERVICES = Slot(
    "service",
    (
        _product(
            "Brightwave account",
            url="brightwave.example/account/reset",
            lock=30,
        ),
        _product(
            "Brightwave webmail",
            url="mail.brightwave.example/forgot",
            lock=15,
        ),
        _product(
            "Brightwave TV account",
            url="tv.brightwave.example/help/password",
            lock=60,
        ),
    ),
)

AUDIO = Slot(
    "audio",
    (
        _product(
            "SoundBar S1",
            pair="hold the Bluetooth button on the remote for 5 seconds until the light pulses "
            "blue",
            name="BW-SoundBar-S1",
        ),
        _product(
            "Brightwave Buds 2",
            pair="put both buds in the case, open the lid and hold the case button for 3 seconds "
            "until the light flashes white",
            name="BW Buds 2",
        ),
        _product(
            "Brightwave Buds Pro",
            pair="touch and hold both earbuds for 7 seconds until you hear 'pairing'",
            name="BW Buds Pro",
        ),
    ),
)

SLOTS = {s.name: s for s in (ROUTERS, PRINTERS, SYSTEMS, EMAIL_APPS, SERVICES, AUDIO)}

# ------------------------------------------------------------------- templates
TEMPLATES: tuple[Template, ...] = (
    Template(
        "router_reset",
        (
            "How do I reset my {router} router?",
            "How can I factory reset the {router}?",
            "My {router} router is not working properly. How do I reset it to factory settings?",
            "Where is the reset button on the {router} and how long do I hold it?",
        ),
        "To factory-reset your {router}: 1) Leave the router switched on. 2) Find the recessed "
        "reset button {router.reset}. 3) Press and hold it with a paperclip for {router.hold} "
        "seconds, until all the lights flash. 4) Wait about two minutes while it restarts. "
        "5) Reconnect with the Wi-Fi name and password printed {router.label}. A factory reset "
        "erases your custom Wi-Fi name, password and port settings, so only do it if a normal "
        "restart did not help.",
    ),
    Template(
        "router_firmware",
        (
            "How do I update the firmware on my {router}?",
            "Is there a firmware update for the {router} and how do I install it?",
            "How can I check which firmware version my {router} is running?",
        ),
        "To update the {router} firmware: 1) Connect a device to the router's network, ideally "
        "with a cable. 2) Open {router.admin} and sign in with the admin password printed "
        "{router.label}. 3) Go to System > Firmware; the current version is shown at the top. "
        "4) Click Check for updates and, if one is offered, Install. 5) Do not unplug the "
        "router while the lights blink; it restarts by itself after about five minutes.",
    ),
    Template(
        "wifi_password",
        (
            "How do I change the Wi-Fi password on my {router}?",
            "I want a new Wi-Fi password for my {router}. How do I set it?",
            "How can I change the network name and password of the {router}?",
        ),
        "To change the Wi-Fi password of your {router}: 1) Open {router.admin} from a device on "
        "your network. 2) Sign in with the admin password printed {router.label}. 3) Go to "
        "Wi-Fi > Security and type the new password (at least 12 characters); you can change "
        "the network name on the same page. 4) Click Save. Every device disconnects and must "
        "rejoin with the new password.",
    ),
    Template(
        "wifi_slow",
        (
            "My Wi-Fi is very slow with the {router}. What can I do?",
            "Why is my internet so slow on the {router}?",
            "The {router} keeps dropping the Wi-Fi connection. How do I fix it?",
        ),
        "Slow or dropping Wi-Fi on a {router} is usually interference or distance: 1) Restart "
        "the router by unplugging it for 30 seconds. 2) Move it to a central, raised spot away "
        "from microwaves and thick walls. 3) The {router} supports {router.bands}; in "
        "{router.admin} under Wi-Fi > Channels, choose Auto so it picks the least busy "
        "channel. 4) Run a speed test with a cable plugged in: if that is slow too, the fault "
        "is on the line and we can book an engineer.",
    ),
    Template(
        "printer_offline",
        (
            "My {printer} printer shows as offline on {os}. How do I fix it?",
            "Why does {os} say my {printer} is offline?",
            "I can't print to my {printer} from {os}, it says the printer is offline.",
        ),
        "When {os} shows the {printer} as offline: 1) Check the printer is on and its Wi-Fi "
        "light is steady; if not, {printer.wifi} to rejoin your network. 2) On {os}, open "
        "{os.printers}, remove the {printer} ({printer.model_id}) and add it again so it picks "
        "up the printer's new address. 3) Make sure the computer or phone is on the same "
        "Wi-Fi network as the printer, not a guest network. 4) Print a test page.",
    ),
    Template(
        "printer_jam",
        (
            "How do I clear a paper jam in my {printer}?",
            "My {printer} has a paper jam. What should I do?",
            "The {printer} keeps saying paper jam. How do I fix it?",
        ),
        "To clear a paper jam in the {printer}: 1) Switch the printer off and unplug it. "
        "2) To reach the paper path, {printer.door}. 3) Pull the jammed sheet out slowly with "
        "both hands, in the direction the paper normally travels, so it does not tear. "
        "4) Check for torn scraps, close everything and plug the printer back in. 5) Fan the "
        "paper stack and do not fill the tray above the max line.",
    ),
    Template(
        "vpn_connect",
        (
            "The Brightwave VPN won't connect on {os}. What should I do?",
            "How do I set up the Brightwave VPN on {os}?",
            "My VPN connection keeps failing on {os}. How can I fix it?",
        ),
        "To get the Brightwave VPN working on {os}: 1) Check your normal internet connection "
        "works first. 2) Open {os.vpn} and remove any old Brightwave VPN profile. 3) Add the "
        "VPN again with server vpn.brightwave.example and your My Brightwave username and "
        "password. 4) If it still fails, switch the protocol from IKEv2 to WireGuard in the "
        "same screen; some public networks block IKEv2. 5) Restart the device via "
        "{os.restart} and connect again.",
    ),
    Template(
        "email_sync",
        (
            "My Brightwave email is not syncing in {email_app}. How do I fix it?",
            "New emails don't show up in {email_app}. What should I do?",
            "Why has {email_app} stopped syncing my Brightwave mail?",
        ),
        "When {email_app} stops syncing your Brightwave mail: 1) Check you can see the new "
        "messages in Brightwave webmail; if not, the problem is not the app. 2) In {email_app} "
        "open {email_app.settings} and confirm the incoming server is imap.brightwave.example "
        "on port 993 with SSL, and the outgoing server is smtp.brightwave.example on port "
        "465. 3) Re-enter your password if prompted. 4) Force a refresh: {email_app.refresh}.",
    ),
    Template(
        "forgot_password",
        (
            "I forgot the password for my {service}. How do I reset it?",
            "How do I reset my {service} password?",
            "I can't remember my {service} password. What can I do?",
        ),
        "To reset your {service} password: 1) Go to {service.url}. 2) Enter the email address "
        "or account number you registered with. 3) Open the reset link we email you within 15 "
        "minutes; it expires after one hour. 4) Choose a new password of at least 12 "
        "characters that you have not used before. Your other devices will ask you to sign in "
        "again with the new password.",
    ),
    Template(
        "account_locked",
        (
            "My {service} is locked. How do I unlock it?",
            "It says my {service} is locked after too many attempts. What now?",
        ),
        "Your {service} locks for {service.lock} minutes after five wrong passwords, to protect "
        "it from guessing attacks. 1) Wait {service.lock} minutes; the lock lifts by itself. "
        "2) If you are unsure of the password, reset it at {service.url} instead of trying "
        "again. 3) If the account locks again without you trying to sign in, someone else may "
        "be guessing: change your password and turn on two-step verification.",
    ),
    Template(
        "two_factor_new_phone",
        (
            "I got a new phone. How do I move two-step verification for my {service}?",
            "How do I get my {service} verification codes on my new phone?",
        ),
        "To move two-step verification for your {service} to a new phone: 1) On a device that "
        "is still signed in, open Security > Two-step verification. 2) Choose Change "
        "authenticator and scan the QR code with the new phone. 3) Enter the six-digit code to "
        "confirm. If you no longer have any signed-in device, use one of your backup codes at "
        "{service.url}, or call us to verify your identity.",
    ),
    Template(
        "bluetooth_pairing",
        (
            "How do I pair my {audio} with my {os} device?",
            "My {audio} won't connect to {os} over Bluetooth. What should I do?",
            "How can I connect the {audio} to {os}?",
        ),
        "To pair the {audio} with {os}: 1) Put it in pairing mode: {audio.pair}. 2) On {os}, "
        "open {os.bluetooth}. 3) Choose {audio.name} from the list. 4) If it does not appear, "
        "turn Bluetooth off and on again, keep the devices within one metre, and remove any "
        "old {audio.name} entry before trying again.",
    ),
    Template(
        "system_update",
        (
            "A system update keeps failing on {os}. What should I do?",
            "How do I install the latest updates on {os}?",
        ),
        "When an update fails on {os}: 1) Make sure you have at least 10 GB of free space and "
        "the device is charging. 2) Restart via {os.restart}. 3) Open {os.update} and try "
        "again on a stable Wi-Fi connection (not the VPN). 4) If the same update fails twice, "
        "note the error code shown and send it to us so we can check for known issues.",
    ),
)

PREFIXES = ("", "Hi! ", "Hello there. ", "Good morning! ")
SUFFIXES = ("", " Thanks!", " Thank you in advance.", " Any help is appreciated.")

GRAMMAR = Grammar(TEMPLATES, SLOTS, prefixes=PREFIXES, suffixes=SUFFIXES)

GENERIC_ANSWERS = (
    "Please restart your device and try again. If the problem continues, contact Brightwave "
    "support.",
    "Thanks for reaching out! This is a known issue and our team is working on it. Please "
    "check back in a few days.",
    "Have you tried turning it off and on again? Most problems are solved by a restart.",
    "Please make sure your device is running the latest software version and try again.",
)


# ------------------------------------------------------------------ generation
def generate_pairs(
    n: int,
    seed: int,
    *,
    split: str = "all",
    exclude: Collection[Pair] | Collection[tuple[str, str]] = (),
) -> list[Pair]:
    """``n`` distinct support questions with their canned answers (answers may repeat)."""
    return GRAMMAR.generate(
        n,
        np.random.default_rng(seed),
        split=split,
        exclude_questions={p[0] for p in exclude},
    )


@lru_cache(maxsize=1)
def _answer_index() -> tuple[dict[str, tuple[Template, dict[str, SlotValue]]], tuple[str, ...]]:
    """Every canned answer, mapped back to its template and slot values."""
    index: dict[str, tuple[Template, dict[str, SlotValue]]] = {}
    for template in TEMPLATES:
        placeholders = template.placeholders(template.phrasings[0])
        choices = [SLOTS[slot_type].values for _, slot_type in placeholders]
        for combo in itertools.product(*choices):
            values = {name: v for (name, _), v in zip(placeholders, combo, strict=True)}
            index.setdefault(template.answer.format(**values), (template, values))
    return index, tuple(index)


def _pick(rng: Any, n: int) -> int:
    return min(int(rng.random() * n), n - 1)


def _answer_slots(template: Template) -> set[str]:
    return {
        name.split(".")[0] for _, name, _, _ in string.Formatter().parse(template.answer) if name
    }


class TechSupportDomain(Domain):
    name = "tech_support"
    baseline_quality = 0.4

    def degrade(self, answer: str, rng: Any) -> str:
        """A plausible but wrong answer; never equal to ``answer``."""
        index, answers = _answer_index()
        roll = rng.random()
        known = index.get(answer)
        if known is not None and roll < 0.5:
            # Right topic, wrong details: another product's or platform's steps.
            template, values = known
            name = sorted(_answer_slots(template))[_pick(rng, len(_answer_slots(template)))]
            slot_type = dict(template.placeholders(template.phrasings[0]))[name]
            others = [v for v in SLOTS[slot_type].values if v is not values[name]]
            wrong = template.answer.format(**{**values, name: others[_pick(rng, len(others))]})
            if wrong != answer:
                return wrong
        if roll < 0.85:
            # Confidently answering a different question.
            topic = known[0].key if known is not None else None
            candidates = [a for a in answers if index[a][0].key != topic]
            return candidates[_pick(rng, len(candidates))]
        generic = [g for g in GENERIC_ANSWERS if g != answer]
        return generic[_pick(rng, len(generic))]


DOMAIN = TechSupportDomain(GRAMMAR)
