"""The benchmark registry: each dataset's classes, their prompt names and synonyms, its templates,
and the loader of its published layout.

Class names and templates follow the published evaluations. Where the PathGen-CLIP repository
ships a zero-shot script (PathGen-1-6M/PathGen-1.6M, ``Zero-shot_classification/clip_acc_*.py``:
CRC, BACH, SICAPv2, WSSS4LUAD, LC25000 colon/lung, Osteo, SkinCancer) its class order, class names
and single template are used verbatim, and QuiltNet's names (wisdomikezogwo/quilt1m,
``eval/en_classnames.json``) become synonyms; the other datasets use QuiltNet's or PLIP's names.
The four-template ensemble is the one those evaluations share. An ensemble prompt set is every
synonym of a class under every template; the class embedding is the mean of their normalised text
embeddings.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pathgen.evaluate import loaders
from pathgen.evaluate.data import Example

ENSEMBLE_TEMPLATES = (
    "a histopathology slide showing {c}",
    "histopathology image of {c}",
    "pathology tissue showing {c}",
    "presence of {c} tissue on image",
)


@dataclass(frozen=True)
class Benchmark:
    """A dataset: label ids in class order, prompt names and synonyms per id, and its loader."""

    name: str
    title: str
    classes: tuple[str, ...]
    names: dict[str, str]
    loader: Callable[[Path], list[Example]]
    layout: str
    single_template: str = "An H&E image of {c}."
    templates: tuple[str, ...] = ENSEMBLE_TEMPLATES
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    task: str = "classification"  # or "retrieval" (image -> image, by class)
    aliases: tuple[str, ...] = ()
    source: str = ""
    # The split PathGen-CLIP's clip_acc_*.py scores zero-shot on (None: every image it lists); see
    # pathgen.evaluate.protocols for the named presets that use it.
    pathgen_split: str | None = None
    # Classes in ``classes`` order are grades (SICAPv2 Gleason, IDC grade): quadratic weighted κ is
    # reported beside accuracy, as graded tasks are scored in the literature.
    ordinal: bool = False

    def class_names(self) -> list[str]:
        return [self.names[c] for c in self.classes]

    def prompts(self, ensemble: bool) -> list[list[str]]:
        """Per class (in class order) the texts whose mean embedding is that class's classifier row."""
        out = []
        for cls in self.classes:
            if not ensemble:
                out.append([self.single_template.format(c=self.names[cls])])
                continue
            words = (self.names[cls], *self.synonyms.get(cls, ()))
            out.append([t.format(c=w) for w in dict.fromkeys(words) for t in self.templates])
        return out

    def load(self, root: str | Path) -> list[Example]:
        root = Path(root).expanduser()
        if not root.exists():
            raise FileNotFoundError(
                f"{self.name}: data folder {root} does not exist (expected {self.layout})"
            )
        examples = self.loader(root)
        unknown = sorted({e.label for e in examples} - set(self.classes))
        if unknown:
            raise ValueError(f"{self.name}: loader produced unknown labels {unknown}")
        return examples


def _b(name: str, title: str, names: dict[str, str], loader: Callable, layout: str, **kw) -> Benchmark:
    return Benchmark(
        name=name, title=title, classes=tuple(names), names=names, loader=loader, layout=layout, **kw
    )


# Kriegsmann et al. skin classes (the ``class`` column of tiles-v2.csv), in QuiltNet's order:
# (PathGen-CLIP name, QuiltNet name, further synonyms).
_SKIN = {
    "nontumor_skin_necrosis_necrosis": ("non-tumor necrosis", "necrosis", ("necrotic tissue",)),
    "nontumor_skin_muscle_skeletal": ("non-tumor skeletal muscle", "skeletal muscle", ("striated muscle",)),
    "nontumor_skin_sweatglands_sweatglands": ("non-tumor sweat glands", "eccrine sweat glands", ()),
    "nontumor_skin_vessel_vessel": ("non-tumor vessel", "vessels", ("blood vessels",)),
    "nontumor_skin_elastosis_elastosis": ("non-tumor elastosis", "elastosis", ("solar elastosis",)),
    "nontumor_skin_chondraltissue_chondraltissue": ("non-tumor chondral tissue", "chondral tissue", ()),
    "nontumor_skin_hairfollicle_hairfollicle": ("non-tumor hair follicle", "hair follicle", ()),
    "nontumor_skin_epidermis_epidermis": ("non-tumor epidermis", "epidermis", ()),
    "nontumor_skin_nerves_nerves": ("non-tumor nerves", "nerves", ("peripheral nerve",)),
    "nontumor_skin_subcutis_subcutis": ("non-tumor subcutis", "subcutis", ("subcutaneous fat",)),
    "nontumor_skin_dermis_dermis": ("non-tumor dermis", "dermis", ()),
    "nontumor_skin_sebaceousglands_sebaceousglands": ("non-tumor sebaceous glands", "sebaceous glands", ()),
    "tumor_skin_epithelial_sqcc": (
        "tumor epithelial squamous cell carcinoma",
        "squamous-cell carcinoma",
        ("cutaneous squamous cell carcinoma",),
    ),
    "tumor_skin_melanoma_melanoma": ("tumor melanoma", "melanoma in-situ", ("melanoma",)),
    "tumor_skin_epithelial_bcc": ("tumor epithelial basal cell carcinoma", "basal-cell carcinoma", ()),
    "tumor_skin_naevus_naevus": ("tumor naevus", "naevus", ("melanocytic nevus",)),
}
# PathGen-CLIP's clip_acc_skincancer.py numbers the 16 classes alphabetically.
_SKIN_PATHGEN = {k: _SKIN[k][0] for k in sorted(_SKIN)}
_SKIN_SYNONYMS = {k: (v[1], *v[2]) for k, v in _SKIN.items()}

BENCHMARKS: dict[str, Benchmark] = {}


def register(bench: Benchmark) -> Benchmark:
    """Add a benchmark (or replace one of the same name); its aliases resolve to it too."""
    BENCHMARKS[bench.name] = bench
    return bench


for _bench in (
    _b(
        "crc100k",
        "CRC-100K / NCT-CRC-HE-100K (test: CRC-VAL-HE-7K)",
        {
            "ADI": "adipose",
            "BACK": "background",
            "DEB": "debris",
            "LYM": "lymphocytes",
            "MUC": "mucus",
            "MUS": "smooth muscle",
            "NORM": "normal colon mucosa",
            "STR": "cancer-associated stroma",
            "TUM": "colorectal adenocarcinoma epithelium",
        },
        loaders.load_crc,
        "NCT-CRC-HE-100K[-NONORM]/ and/or CRC-VAL-HE-7K/ with class folders "
        "ADI BACK DEB LYM MUC MUS NORM STR TUM",
        single_template="An H&E patch of {c}",
        synonyms={
            "ADI": ("adipose tissue", "fat"),
            "BACK": ("empty slide background",),
            "DEB": ("necrotic debris",),
            "LYM": ("lymphocyte aggregates", "immune cells"),
            "MUC": ("mucin", "extracellular mucin"),
            "MUS": ("muscularis propria",),
            "NORM": ("benign colonic glands", "normal colonic epithelium"),
            "STR": ("desmoplastic stroma", "tumor stroma"),
            "TUM": ("adenocarcinoma", "colorectal cancer"),
        },
        aliases=("crc", "nct-crc-he", "crc-val-he-7k", "kather"),
        source="Kather et al. 2019, Zenodo 1214456",
        pathgen_split="train",  # clip_acc_crc.py walks NCT-CRC-HE-100K in full
    ),
    _b(
        "bach",
        "BACH (ICIAR 2018) breast microscopy",
        {
            "benign": "benign tissue",
            "insitu": "in-situ carcinoma",
            "invasive": "invasive carcinoma",
            "normal": "normal tissue",
        },
        loaders.load_bach,
        "ICIAR2018_BACH_Challenge/Photos/{Benign,InSitu,Invasive,Normal}/*.tif",
        single_template="An H&E image of {c}",
        synonyms={
            "benign": ("breast non-malignant benign tissue", "benign breast tissue"),
            "insitu": ("breast malignant in-situ carcinoma", "ductal carcinoma in situ"),
            "invasive": ("breast malignant invasive carcinoma", "invasive ductal carcinoma"),
            "normal": ("breast normal breast tissue", "normal breast tissue"),
        },
        source="Aresta et al. 2019",
    ),
    _b(
        "sicapv2",
        "SICAPv2 prostate Gleason patterns",
        {
            "NC": "non-cancerous",
            "G3": "gleason grade 3: atrophic well differentiated and dense glandular regions",
            "G4": "gleason grade 4: cribriform, ill-formed, large-fused and papillary glandular patterns",
            "G5": "gleason grade 5: isolated cells or file of cells, nests of cells without lumina "
            "formation and pseudo-rosetting patterns",
        },
        loaders.load_sicapv2,
        "SICAPv2/images/*.jpg + SICAPv2/partition/Test/{Train,Test}.xlsx",
        single_template="An H&E image of {c}",
        synonyms={
            "NC": ("non-cancerous well-differentiated glands", "benign glands"),
            "G3": (
                "gleason grade 3 with atrophic well differentiated and dense glandular regions",
                "atrophic dense glands",
            ),
            "G4": (
                "gleason grade 4 with cribriform, ill-formed, large-fused and papillary glandular patterns",
                "cribriform ill-formed fused papillary patterns",
            ),
            "G5": (
                "gleason grade 5 with nests of cells without lumen formation, isolated cells and "
                "pseudo-roseting patterns",
                "isolated nest cells without lumen roseting patterns",
            ),
        },
        source="Silva-Rodríguez et al. 2020",
        pathgen_split="train",  # clip_acc_SICAP_v2.py reads partition/Test/Train.xlsx
        ordinal=True,
    ),
    _b(
        "wsss4luad",
        "WSSS4LUAD lung adenocarcinoma (tumour vs normal)",
        {"tumor": "tumor", "normal": "normal"},
        loaders.load_wsss4luad,
        "1.training/NAME-[t, s, n].png",
        single_template="An H&E image of {c} tissue.",
        synonyms={"tumor": ("lung adenocarcinoma",), "normal": ("normal lung tissue",)},
        source="Han et al. 2022",
        pathgen_split="train",  # clip_acc_WSSS4LUAD.py lists 1.training/*.png
    ),
    _b(
        "lc25000-colon",
        "LC25000 colon",
        {"colon_n": "normal colon tissue", "colon_aca": "colon adenocarcinoma"},
        loaders.load_lc25000_colon,
        "lung_colon_image_set/colon_image_sets/{colon_aca,colon_n}/*.jpeg",
        single_template="An image of {c}",
        synonyms={"colon_n": ("benign colonic tissue",), "colon_aca": ("colorectal adenocarcinoma",)},
        aliases=("lc25000colon", "lc-colon"),
        source="Borkowski et al. 2019",
    ),
    _b(
        "lc25000-lung",
        "LC25000 lung",
        {
            "lung_n": "benign lung tissue",
            "lung_aca": "lung adenocarcinoma",
            "lung_scc": "lung squamous cell carcinomas",
        },
        loaders.load_lc25000_lung,
        "lung_colon_image_set/lung_image_sets/{lung_aca,lung_n,lung_scc}/*.jpeg",
        single_template="An image of {c}",
        synonyms={
            "lung_n": ("benign lung", "normal lung tissue"),
            "lung_scc": ("lung squamous cell carcinoma",),
        },
        aliases=("lc25000lung", "lc-lung"),
        source="Borkowski et al. 2019",
    ),
    _b(
        "osteo",
        "Osteosarcoma-UT (viable / necrotic / non-tumour)",
        {"nontumor": "non-tumor", "necrotic": "necrotic tumor", "viable": "viable tumor"},
        loaders.load_osteo,
        "tiles *.jpg + ML_Features_1144.csv (image.name, classification)",
        single_template="An H&E image patch of {c}",
        synonyms={
            "nontumor": ("normal bone",),
            "necrotic": ("non-viable necrotic osteosarcoma tumor",),
            "viable": ("viable osteosarcoma tumor",),
        },
        aliases=("osteosarcoma",),
        source="Arunachalam et al. 2019 (TCIA)",
    ),
    _b(
        "skincancer",
        "SkinCancer (Kriegsmann et al. 2022), 16 tissue classes",
        _SKIN_PATHGEN,
        loaders.load_skincancer,
        "data/tiles-v2.csv (file, class, set) + data/tiles/<class>/*.jpg",
        single_template="An H&E image of {c}",
        synonyms=_SKIN_SYNONYMS,
        aliases=("skin",),
        source="Kriegsmann et al. 2022, heiDATA",
    ),
    _b(
        "pcam",
        "PatchCamelyon (lymph node metastasis)",
        {"0": "lymph node", "1": "lymph node containing metastatic tumor tissue"},
        loaders.load_pcam,
        "camelyonpatch_level_2_split_test_{x,y}.h5",
        single_template="an H&E patch of {c}.",
        synonyms={
            "0": ("lymph nodes without any metastases", "normal lymph node"),
            "1": ("lymph nodes containing metastases", "metastatic breast cancer"),
        },
        aliases=("patchcamelyon",),
        source="Veeling et al. 2018",
    ),
    _b(
        "mhist",
        "MHIST colorectal polyps (HP vs SSA)",
        {"HP": "hyperplastic polyp", "SSA": "sessile serrated adenoma"},
        loaders.load_mhist,
        "images/*.png + annotations.csv",
        synonyms={"HP": ("benign hyperplastic polyp",), "SSA": ("sessile serrated lesion",)},
        source="Wei et al. 2021",
    ),
    _b(
        "digestpath",
        "DigestPath 2019 colonoscopy tissue (benign vs malignant)",
        {"benign": "benign", "malignant": "malignant"},
        loaders.load_digestpath,
        "Colonoscopy_tissue_segment_dataset/tissue-train-{pos-v1,neg}/*.jpg",
        synonyms={"benign": ("benign colonic tissue",), "malignant": ("colorectal carcinoma",)},
        source="Da et al. 2022",
    ),
    _b(
        "pannuke",
        "PanNuke (benign vs malignant, PLIP binarisation)",
        {"benign": "benign", "malignant": "malignant"},
        loaders.load_pannuke,
        "Fold N/images/foldN/images.npy + Fold N/masks/foldN/masks.npy",
        synonyms={"benign": ("non-neoplastic tissue",), "malignant": ("neoplastic cells",)},
        source="Gamper et al. 2019",
    ),
    _b(
        "renal",
        "Renal cell carcinoma tissue (Brummer et al. 2023)",
        {
            "blood": "red blood cells",
            "cancer": "renal cancer",
            "normal": "normal renal tissue",
            "other": "torn adipose necrotic tissue",
            "stroma": "muscle fibrous stroma blood vessels",
        },
        loaders.load_renal,
        "tissue_classification/{blood,cancer,normal,other,stroma}/ (empty/ is skipped)",
        synonyms={"cancer": ("clear cell renal cell carcinoma",), "stroma": ("fibrous stroma",)},
        aliases=("renalcell", "renal-cell"),
        source="Brummer et al. 2023, Zenodo 7898308",
    ),
    _b(
        "skin-tumour",
        "Skin tumour subset of Kriegsmann et al. (4 classes)",
        {k: v[1] for k, v in _SKIN.items() if k.startswith("tumor_")},
        loaders.load_skin_tumour,
        "data/tiles-v2.csv (file, class, set) + data/tiles/<class>/*.jpg",
        synonyms={k: (v[0], *v[2]) for k, v in _SKIN.items() if k.startswith("tumor_")},
        aliases=("skintumor", "skin-tumor", "skintumour"),
        source="Kriegsmann et al. 2022",
    ),
    _b(
        "idc-grade",
        "Invasive ductal carcinoma grade (Databiox)",
        {
            "G1": "well differentiated bloom richardson grade one",
            "G2": "moderately differentiated bloom richardson grade two",
            "G3": "poorly differentiated grade three",
        },
        loaders.load_idc_grade,
        "BC_IDC_Grade_1/ BC_IDC_Grade_2/ BC_IDC_Grade_3/ (magnification subfolders)",
        synonyms={
            "G1": ("well differentiated invasive ductal carcinoma", "low grade breast cancer"),
            "G2": ("moderately differentiated invasive ductal carcinoma", "intermediate grade breast cancer"),
            "G3": ("poorly differentiated invasive ductal carcinoma", "high grade breast cancer"),
        },
        aliases=("idc", "databiox", "idcgrade"),
        source="Bolhasani et al. 2020",
        ordinal=True,
    ),
    _b(
        "kimia24",
        "KIMIA Path24 (image retrieval)",
        {str(i): f"tissue type {i}" for i in range(24)},
        loaders.load_kimia24,
        "Training/s{0..23}/*.jpg + RGBPatches-test/s{0..23}/*.jpg",
        task="retrieval",
        aliases=("kimia", "kimia-path24", "kimiapath24"),
        source="Babaie et al. 2017",
    ),
):
    register(_bench)


def get_benchmark(name: str) -> Benchmark:
    """Look a benchmark up by name or alias (case-insensitive); unknown names list the valid ones."""
    key = name.strip().lower()
    for bench in BENCHMARKS.values():
        if key == bench.name or key in bench.aliases:
            return bench
    known = sorted(BENCHMARKS)
    close = difflib.get_close_matches(key, known + [a for b in BENCHMARKS.values() for a in b.aliases], n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown benchmark {name!r}{hint}; known: {', '.join(known)}")
