"""Clinical content of the synthetic establishment: its services and what they treat.

Diagnoses are ICD-10 (CIM-10 in France), drugs ATC, procedures and allergies SNOMED CT,
measurements LOINC with UCUM units. Each service brings the diagnoses, drugs and
procedures a patient seen there would plausibly have.
"""

from __future__ import annotations

from dataclasses import dataclass

ICD10 = "http://hl7.org/fhir/sid/icd-10"
ATC = "http://www.whocc.no/atc"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"

Code = tuple[str, str]
"""(code, display)"""


@dataclass(frozen=True)
class ServiceKind:
    """A clinical service (a ward), with the content typical of its patients."""

    key: str
    name: str
    encounter_class: str
    """v3 ActCode: IMP (inpatient), AMB (ambulatory) or EMER (emergency)."""
    diagnoses: tuple[Code, ...]
    drugs: tuple[Code, ...]
    procedures: tuple[Code, ...]


SERVICES = (
    ServiceKind(
        "cardio",
        "Cardiologie",
        "IMP",
        (
            ("I21.9", "Infarctus aigu du myocarde"),
            ("I48.9", "Fibrillation auriculaire"),
            ("I50.9", "Insuffisance cardiaque"),
            ("I10", "Hypertension essentielle"),
        ),
        (
            ("B01AF01", "rivaroxaban"),
            ("C07AB07", "bisoprolol"),
            ("C03CA01", "furosémide"),
            ("C09AA05", "ramipril"),
        ),
        (("41976001", "Cardiac catheterization"), ("40701008", "Echocardiography")),
    ),
    ServiceKind(
        "urgences",
        "Urgences",
        "EMER",
        (
            ("S52.5", "Fracture de l'extrémité inférieure du radius"),
            ("R07.4", "Douleur thoracique"),
            ("J18.9", "Pneumopathie"),
            ("T78.4", "Allergie, sans précision"),
        ),
        (
            ("N02BE01", "paracétamol"),
            ("M01AE01", "ibuprofène"),
            ("J01CR02", "amoxicilline et acide clavulanique"),
        ),
        (("79321009", "Application of splint"), ("399208008", "Plain chest X-ray")),
    ),
    ServiceKind(
        "onco",
        "Oncologie",
        "AMB",
        (
            ("C50.9", "Tumeur maligne du sein"),
            ("C34.9", "Tumeur maligne des bronches et du poumon"),
            ("C18.9", "Tumeur maligne du côlon"),
        ),
        (("L01XC03", "trastuzumab"), ("L01BC06", "capécitabine"), ("A04AA01", "ondansétron")),
        (("367336001", "Chemotherapy"), ("108290001", "Radiation oncology AND/OR radiotherapy")),
    ),
    ServiceKind(
        "mater",
        "Maternité",
        "IMP",
        (
            ("O80", "Accouchement unique et spontané"),
            ("O24.4", "Diabète sucré survenant au cours de la grossesse"),
            ("O13", "Hypertension gestationnelle"),
        ),
        (("B03AA07", "sulfate ferreux"), ("B03BB01", "acide folique"), ("N02BE01", "paracétamol")),
        (("11466000", "Cesarean section"), ("177184002", "Normal delivery procedure")),
    ),
    ServiceKind(
        "pedia",
        "Pédiatrie",
        "IMP",
        (
            ("J21.9", "Bronchiolite aiguë"),
            ("A08.4", "Infection intestinale virale"),
            ("J45.9", "Asthme"),
        ),
        (
            ("R03AC02", "salbutamol"),
            ("N02BE01", "paracétamol"),
            ("A07CA", "soluté de réhydratation orale"),
        ),
        (("56251003", "Nebulizer therapy"), ("182813001", "Emergency oxygen therapy")),
    ),
    ServiceKind(
        "pneumo",
        "Pneumologie",
        "IMP",
        (
            ("J44.1", "BPCO avec exacerbation aiguë"),
            ("J45.9", "Asthme"),
            ("G47.3", "Apnée du sommeil"),
        ),
        (
            ("R03AK06", "salmétérol et fluticasone"),
            ("R03BB04", "tiotropium"),
            ("H02AB06", "prednisolone"),
        ),
        (("23426006", "Measurement of respiratory function"), ("10847001", "Bronchoscopy")),
    ),
    ServiceKind(
        "gastro",
        "Gastro-entérologie",
        "AMB",
        (
            ("K21.9", "Reflux gastro-œsophagien"),
            ("K50.9", "Maladie de Crohn"),
            ("K70.3", "Cirrhose alcoolique du foie"),
        ),
        (("A02BC05", "ésoméprazole"), ("L04AB04", "adalimumab"), ("A06AD11", "lactulose")),
        (("73761001", "Colonoscopy"), ("386831001", "Upper gastrointestinal endoscopy")),
    ),
    ServiceKind(
        "neuro",
        "Neurologie",
        "IMP",
        (("I63.9", "Infarctus cérébral"), ("G40.9", "Épilepsie"), ("G35", "Sclérose en plaques")),
        (
            ("N03AX14", "lévétiracétam"),
            ("B01AC06", "acide acétylsalicylique"),
            ("L04AA27", "fingolimod"),
        ),
        (("77477000", "CT of head"), ("54550000", "Electroencephalogram")),
    ),
    ServiceKind(
        "geria",
        "Gériatrie",
        "IMP",
        (("F03", "Démence"), ("R54", "Sénilité"), ("E11.9", "Diabète de type 2")),
        (("N06DA02", "donépézil"), ("A10BA02", "metformine"), ("N05CF02", "zolpidem")),
        (("225358003", "Wound care"), ("1023001", "Apnea test")),
    ),
    ServiceKind(
        "ortho",
        "Chirurgie orthopédique",
        "IMP",
        (
            ("S72.0", "Fracture du col du fémur"),
            ("M17.1", "Gonarthrose primaire"),
            ("M16.1", "Coxarthrose primaire"),
        ),
        (("B01AB05", "énoxaparine"), ("N02AX02", "tramadol"), ("N02BE01", "paracétamol")),
        (("52734007", "Total hip replacement"), ("609588000", "Total knee replacement")),
    ),
)

# (SNOMED CT, display, AllergyIntolerance.category)
ALLERGIES = (
    ("91936005", "Allergy to penicillin", "medication"),
    ("294505008", "Allergy to amoxicillin", "medication"),
    ("300913006", "Shellfish allergy", "food"),
    ("91935009", "Allergy to peanuts", "food"),
    ("418689008", "Allergy to grass pollen", "environment"),
    ("293586001", "Allergy to aspirin", "medication"),
    ("300916003", "Latex allergy", "environment"),
)

# (LOINC, display, UCUM unit, low, high, decimals)
VITALS = (
    ("8867-4", "Heart rate", "/min", 52, 118, 0),
    ("8310-5", "Body temperature", "Cel", 36.0, 39.4, 1),
    ("29463-7", "Body weight", "kg", 48, 110, 1),
    ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", 89, 100, 0),
    ("9279-1", "Respiratory rate", "/min", 12, 26, 0),
)
LABS = (
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 9.0, 17.0, 1),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.5, 2.4, 2),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 210, 0),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.2, 5.6, 1),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 132, 147, 0),
)
LAB_PANEL = ("24323-8", "Comprehensive metabolic 2000 panel - Serum or Plasma")
NOTE_TYPES = (("11506-3", "Progress note"), ("18842-5", "Discharge summary"))
