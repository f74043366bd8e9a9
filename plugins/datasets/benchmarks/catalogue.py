"""What is known about each named benchmark: domains, classes in their published order, the layout
of a downloaded copy, expected image counts, the split the literature uses, and where to get it.

Facts come from the datasets' own pages and the reference loaders that define the published label
order (TLlib's ``tllib/vision/datasets``, DomainBed's ``domainbed/datasets.py`` and download script).
"""

from __future__ import annotations

from dataclasses import dataclass, field

FOLDERS = "folders"  # DOMAIN[/images]/CLASS/IMAGE; the labels are the class folders
LISTS = "lists"  # image-list files of "RELATIVE/PATH LABEL" lines name every image and its label


@dataclass(frozen=True)
class Download:
    """One file of a domain's public download: ``path`` below the benchmark's base URL, unpacked
    into DATA_ROOT when ``unpack`` (an archive), else saved there as ``saved`` (a list file)."""

    path: str
    unpack: bool = True
    saved: str = ""
    sha256: str | None = None  # None: not published; trusted on first use (tlbench.utils.download)


@dataclass(frozen=True)
class Benchmark:
    """One named benchmark."""

    name: str
    title: str
    domains: tuple[str, ...]
    classes: tuple[str, ...]  # label i is classes[i]: the published order
    expected: dict  # images per domain in the published release ({domain: n} or {domain: {split: n}})
    layout: str  # FOLDERS or LISTS
    layout_text: str  # the expected tree, in one line, for errors
    source: str  # where to get it (and its licence terms)
    licence: str
    splits: tuple[str, ...]  # the split rules this benchmark offers; the first is the default
    class_subdir: str = ""  # a folder between the domain and its class folders (Office-31: images)
    list_files: dict = field(default_factory=dict)  # split -> list path relative to the root, with {domain}
    paths_from_domain: bool = False  # list paths are relative to the domain folder (else to DATA_ROOT)
    aliases: dict = field(default_factory=dict)  # a domain folder name some copies use -> ours
    base_url: str = ""  # the public host of its files ("" = no public URL: the user fetches it)
    downloads: dict = field(default_factory=dict)  # domain -> tuple of Download


OFFICE31_CLASSES = (
    "back_pack", "bike", "bike_helmet", "bookcase", "bottle", "calculator", "desk_chair", "desk_lamp",
    "desktop_computer", "file_cabinet", "headphones", "keyboard", "laptop_computer", "letter_tray", "mobile_phone",
    "monitor", "mouse", "mug", "paper_notebook", "pen", "phone", "printer", "projector", "punchers", "ring_binder",
    "ruler", "scissors", "speaker", "stapler", "tape_dispenser", "trash_can")

# TLlib's label order (its image lists number the classes so), not alphabetical
OFFICEHOME_CLASSES = (
    "Drill", "Exit_Sign", "Bottle", "Glasses", "Computer", "File_Cabinet", "Shelf", "Toys", "Sink", "Laptop", "Kettle",
    "Folder", "Keyboard", "Flipflops", "Pencil", "Bed", "Hammer", "ToothBrush", "Couch", "Bike", "Postit_Notes", "Mug",
    "Webcam", "Desk_Lamp", "Telephone", "Helmet", "Mouse", "Pen", "Monitor", "Mop", "Sneakers", "Notebook", "Backpack",
    "Alarm_Clock", "Push_Pin", "Paper_Clip", "Batteries", "Radio", "Fan", "Ruler", "Pan", "Screwdriver", "Trash_Can",
    "Printer", "Speaker", "Eraser", "Bucket", "Chair", "Calendar", "Calculator", "Flowers", "Lamp_Shade", "Spoon",
    "Candles", "Clipboards", "Scissors", "TV", "Curtains", "Fork", "Soda", "Table", "Knives", "Oven", "Refrigerator",
    "Marker")

# the official DomainNet lists' label order (case-insensitive alphabetical)
DOMAINNET_CLASSES = tuple("""
aircraft_carrier airplane alarm_clock ambulance angel animal_migration ant anvil apple arm asparagus axe backpack
banana bandage barn baseball baseball_bat basket basketball bat bathtub beach bear beard bed bee belt bench bicycle
binoculars bird birthday_cake blackberry blueberry book boomerang bottlecap bowtie bracelet brain bread bridge
broccoli broom bucket bulldozer bus bush butterfly cactus cake calculator calendar camel camera camouflage campfire
candle cannon canoe car carrot castle cat ceiling_fan cello cell_phone chair chandelier church circle clarinet clock
cloud coffee_cup compass computer cookie cooler couch cow crab crayon crocodile crown cruise_ship cup diamond
dishwasher diving_board dog dolphin donut door dragon dresser drill drums duck dumbbell ear elbow elephant envelope
eraser eye eyeglasses face fan feather fence finger fire_hydrant fireplace firetruck fish flamingo flashlight
flip_flops floor_lamp flower flying_saucer foot fork frog frying_pan garden garden_hose giraffe goatee golf_club
grapes grass guitar hamburger hammer hand harp hat headphones hedgehog helicopter helmet hexagon hockey_puck
hockey_stick horse hospital hot_air_balloon hot_dog hot_tub hourglass house house_plant hurricane ice_cream jacket
jail kangaroo key keyboard knee knife ladder lantern laptop leaf leg light_bulb lighter lighthouse lightning line
lion lipstick lobster lollipop mailbox map marker matches megaphone mermaid microphone microwave monkey moon mosquito
motorbike mountain mouse moustache mouth mug mushroom nail necklace nose ocean octagon octopus onion oven owl
paintbrush paint_can palm_tree panda pants paper_clip parachute parrot passport peanut pear peas pencil penguin piano
pickup_truck picture_frame pig pillow pineapple pizza pliers police_car pond pool popsicle postcard potato
power_outlet purse rabbit raccoon radio rain rainbow rake remote_control rhinoceros rifle river roller_coaster
rollerskates sailboat sandwich saw saxophone school_bus scissors scorpion screwdriver sea_turtle see_saw shark sheep
shoe shorts shovel sink skateboard skull skyscraper sleeping_bag smiley_face snail snake snorkel snowflake snowman
soccer_ball sock speedboat spider spoon spreadsheet square squiggle squirrel stairs star steak stereo stethoscope
stitches stop_sign stove strawberry streetlight string_bean submarine suitcase sun swan sweater swing_set sword
syringe table teapot teddy-bear telephone television tennis_racquet tent The_Eiffel_Tower The_Great_Wall_of_China
The_Mona_Lisa tiger toaster toe toilet tooth toothbrush toothpaste tornado tractor traffic_light train tree triangle
trombone truck trumpet t-shirt umbrella underwear van vase violin washing_machine watermelon waterslide whale wheel
windmill wine_bottle wine_glass wristwatch yoga zebra zigzag""".split())

HOLDOUT = "holdout"  # a seeded 20 % of every class held out as the test split (DomainBed's rule, per class)
FULL = "full"  # every image is both a training (unlabeled for a target) and a test image (TLlib's UDA protocol)
OFFICIAL = "official"  # the dataset's own train/test lists

BENCHMARKS = {b.name: b for b in (
    Benchmark(
        "office31", "Office-31 (Saenko et al., 2010)", ("amazon", "dslr", "webcam"), OFFICE31_CLASSES,
        {"amazon": 2817, "dslr": 498, "webcam": 795}, FOLDERS, "DATA_ROOT/<amazon|dslr|webcam>/images/<class>/*.jpg",
        "the authors' domain_adaptation_images.tar.gz (https://faculty.cc.gatech.edu/~judy/domainadapt/), or TLlib's "
        "mirror; extract so DATA_ROOT holds amazon/, dslr/, webcam/", "research use (no explicit licence)",
        (HOLDOUT, FULL), class_subdir="images"),
    Benchmark(
        "officehome", "Office-Home (Venkateswara et al., 2017)", ("Art", "Clipart", "Product", "Real_World"),
        OFFICEHOME_CLASSES, {"Art": 2427, "Clipart": 4365, "Product": 4439, "Real_World": 4357}, FOLDERS,
        "DATA_ROOT/<Art|Clipart|Product|Real_World>/<class>/*.jpg",
        "https://www.hemanthdv.org/officeHomeDataset.html (OfficeHomeDataset_10072016.zip); its extracted folder is "
        "DATA_ROOT (its 'Real World' folder is read as Real_World)", "non-commercial research and educational use",
        (HOLDOUT, FULL), aliases={"Real World": "Real_World"}),
    Benchmark(
        "pacs", "PACS (Li et al., 2017)", ("art_painting", "cartoon", "photo", "sketch"),
        ("dog", "elephant", "giraffe", "guitar", "horse", "house", "person"),
        {"art_painting": 2048, "cartoon": 2344, "photo": 1670, "sketch": 3929}, FOLDERS,
        "DATA_ROOT/<art_painting|cartoon|photo|sketch>/<class>/*",
        "DomainBed's download script (python -m domainbed.scripts.download) or the authors' page "
        "(https://domaingeneralization.github.io/); DATA_ROOT is its PACS/ folder (the 'kfold' images)",
        "research use (images collected from the web)", (HOLDOUT, FULL)),
    Benchmark(
        "vlcs", "VLCS (Fang et al., 2013)", ("Caltech101", "LabelMe", "SUN09", "VOC2007"),
        ("bird", "car", "chair", "dog", "person"),
        {"Caltech101": 1415, "LabelMe": 2656, "SUN09": 3282, "VOC2007": 3376}, FOLDERS,
        "DATA_ROOT/<Caltech101|LabelMe|SUN09|VOC2007>/<class>/*.jpg",
        "DomainBed's download script (python -m domainbed.scripts.download); DATA_ROOT is its VLCS/ folder",
        "the four source datasets' terms", (HOLDOUT, FULL)),
    Benchmark(
        "domainnet", "DomainNet, cleaned release (Peng et al., 2019)",
        ("clipart", "infograph", "painting", "quickdraw", "real", "sketch"), DOMAINNET_CLASSES,
        {"clipart": {"train": 33525, "test": 14604}, "infograph": {"train": 36023, "test": 15582},
         "painting": {"train": 50416, "test": 21850}, "quickdraw": {"train": 120750, "test": 51750},
         "real": {"train": 120906, "test": 52041}, "sketch": {"train": 48212, "test": 20916}}, LISTS,
        "DATA_ROOT/<domain>/<class>/*.jpg with DATA_ROOT/<domain>_train.txt and <domain>_test.txt",
        "http://ai.bu.edu/M3SDA/ (one zip per domain and the <domain>_train.txt / _test.txt lists); --download "
        "fetches them", "fair use for research (images collected from the web)", (OFFICIAL, HOLDOUT),
        list_files={"train": "{domain}_train.txt", "test": "{domain}_test.txt"},
        base_url="http://csr.bu.edu/ftp/visda/2019/multi-source/",
        downloads={d: (Download(("groundtruth/" if d in ("clipart", "painting") else "") + f"{d}.zip"),
                       Download(f"domainnet/txt/{d}_train.txt", unpack=False, saved=f"{d}_train.txt"),
                       Download(f"domainnet/txt/{d}_test.txt", unpack=False, saved=f"{d}_test.txt"))
                   for d in ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")}),
    Benchmark(
        "visda2017", "VisDA-2017 classification (Peng et al., 2017)", ("train", "validation"),
        ("aeroplane", "bicycle", "bus", "car", "horse", "knife", "motorcycle", "person", "plant", "skateboard",
         "train", "truck"),
        {"train": 152397, "validation": 55388}, LISTS,
        "DATA_ROOT/<train|validation>/<class>/* with DATA_ROOT/<domain>/image_list.txt",
        "http://ai.bu.edu/visda-2017/ (train.tar: synthetic renders, validation.tar: real photos; each holds its "
        "image_list.txt); --download fetches them", "research use", (HOLDOUT, FULL),
        list_files={"all": "{domain}/image_list.txt"}, paths_from_domain=True,
        base_url="http://csr.bu.edu/ftp/visda17/clf/",
        downloads={d: (Download(f"{d}.tar"),) for d in ("train", "validation")}),
)}


def expected_count(benchmark: Benchmark, domain: str) -> int:
    """Images of ``domain`` in the published release (every split)."""
    value = benchmark.expected[domain]
    return sum(value.values()) if isinstance(value, dict) else int(value)
