"""French names, streets and towns for synthetic people.

Common French given and family names (INSEE frequency lists give the flavour, not the
figures); towns with their real postal codes and département so that INS/NIR birth
places and addresses look right together.
"""

from __future__ import annotations


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Compound names are written with "_" (Le_Gall) so that one split gives them whole.
FAMILY_NAMES = tuple(
    name.replace("_", " ")
    for name in _words(
        "Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon "
        "Michel Lefebvre Leroy Roux David Bertrand Morel Fournier Girard Bonnet Dupont "
        "Lambert Fontaine Rousseau Vincent Muller Lefevre Faure Andre Mercier Blanc Guerin "
        "Boyer Garnier Chevalier Francois Legrand Gauthier Garcia Perrin Robin Clement Morin "
        "Nicolas Henry Roussel Mathieu Gautier Masson Marchand Duval Denis Dumont Marie "
        "Lemaire Noel Meyer Dufour Meunier Brun Blanchard Giraud Joly Riviere Lucas Brunet "
        "Gaillard Barbier Arnaud Martinez Gerard Roche Renard Schmitt Roy Leroux Colin Vidal "
        "Caron Picard Roger Fabre Aubert Lemoine Renaud Dumas Lacroix Olivier Philippe "
        "Bourgeois Pierre Benoit Rey Leclerc Payet Rolland Leclercq Guillaume Lecomte Lopez "
        "Jean Dupuy Guillot Hubert Berger Carpentier Sanchez Dupuis Moulin Louis Deschamps "
        "Huet Vasseur Perez Boucher Fleury Royer Klein Jacquet Adam Paris Poirier Marty "
        "Aubry Guyot Carre Charles Renault Charpentier Menard Maillard Baron Bertin Bailly "
        "Herve Schneider Fernandez Le_Gall Collet Leger Bouvier Julien Prevost Millet Perrot "
        "Daniel Le_Roux Cousin Germain Breton Besson Langlois Remy Le_Goff Pelletier Leveque "
        "Perrier Leblanc Barre Lebrun Marchal Weber Mallet Hamon Boulanger Jacob Monnier "
        "Michaud Rodriguez Guichard Gillet Etienne Grondin Poulain Tessier Chevallier Collin "
        "Chauvin Da_Silva Bouchet Gay Lemaitre Benard Marechal Humbert Reynaud Antoine "
        "Hoarau Perret Barthelemy Cordier Pichon Lejeune Gilbert Lamy Delaunay Pasquier "
        "Carlier Laporte"
    )
)

FEMALE = _words(
    "Marie Jeanne Camille Léa Manon Chloé Emma Inès Jade Louise Alice Lina Rose Anna Julia "
    "Sarah Zoé Lucie Juliette Clara Margaux Pauline Mathilde Élise Anaïs Céline Nathalie "
    "Isabelle Sylvie Catherine Françoise Monique Christine Sophie Sandrine Valérie Véronique "
    "Aurélie Émilie Julie Laure Hélène Agnès Brigitte Nicole Martine Claire Caroline Virginie "
    "Mélanie Audrey Elodie Charlotte Amandine Océane Maëlle Noémie Romane Ambre Louna"
)
MALE = _words(
    "Jean Pierre Michel Philippe Alain Nicolas Christophe Patrick Daniel Bernard Éric Laurent "
    "Frédéric Stéphane David Olivier Sébastien Thierry Julien Pascal Jacques François Thomas "
    "Alexandre Antoine Guillaume Vincent Maxime Romain Hugo Lucas Louis Gabriel Arthur Jules "
    "Raphaël Adam Léo Paul Nathan Ethan Mathis Théo Noah Tom Sacha Enzo Clément Baptiste "
    "Quentin Mathieu Benoît Yves Gérard René Marcel André Henri Didier Bruno Luc Cédric"
)

STREET_KINDS = ("rue", "avenue", "boulevard", "place", "allée", "impasse", "chemin", "quai")
STREET_NAMES = (
    "de la République", "Victor Hugo", "Jean Jaurès", "du Général de Gaulle", "Pasteur",
    "Gambetta", "de la Gare", "des Écoles", "de l'Église", "Jules Ferry", "Émile Zola",
    "du Moulin", "des Lilas", "de la Paix", "Voltaire", "Anatole France", "Carnot",
    "des Tilleuls", "du Château", "Saint-Michel", "de Verdun", "Louis Pasteur",
    "Jean Moulin", "de la Liberté", "des Acacias", "Aristide Briand", "du Stade",
    "Marcel Pagnol", "Molière", "des Peupliers", "de Bretagne", "Paul Bert",
)  # fmt: skip

# (town, postal code, département, INSEE commune number within the département)
TOWNS = (
    ("Lyon", "69003", "69", "383"), ("Villeurbanne", "69100", "69", "266"),
    ("Vénissieux", "69200", "69", "259"), ("Bron", "69500", "69", "029"),
    ("Caluire-et-Cuire", "69300", "69", "034"), ("Saint-Priest", "69800", "69", "290"),
    ("Vaulx-en-Velin", "69120", "69", "256"), ("Oullins", "69600", "69", "149"),
    ("Givors", "69700", "69", "091"), ("Tassin-la-Demi-Lune", "69160", "69", "244"),
    ("Villefranche-sur-Saône", "69400", "69", "264"), ("Écully", "69130", "69", "081"),
    ("Vienne", "38200", "38", "544"), ("Bourgoin-Jallieu", "38300", "38", "053"),
    ("Grenoble", "38000", "38", "185"), ("Saint-Étienne", "42000", "42", "218"),
    ("Bourg-en-Bresse", "01000", "01", "053"), ("Meyzieu", "69330", "69", "282"),
    ("Décines-Charpieu", "69150", "69", "275"), ("Rillieux-la-Pape", "69140", "69", "286"),
    ("Paris", "75013", "75", "113"), ("Marseille", "13005", "13", "205"),
    ("Toulouse", "31000", "31", "555"), ("Annecy", "74000", "74", "010"),
)  # fmt: skip
BIRTH_DEPARTMENTS = ("69", "69", "69", "38", "42", "01", "75", "13", "59", "33", "31", "67")
