//! The synthetic catalogue's vocabulary, shaped after the real articles file: product groups and types with
//! their garment group, season, price level and the types they are worn with; the index hierarchy with the age
//! each index sells to; colours with perceived value and master colour; graphical appearances.

/// Season a product type sells in: 1 = summer peak, -1 = winter peak, 0 = all year.
pub struct TypeSpec {
    pub name: &'static str,
    pub group: &'static str,
    pub garment_group: &'static str,
    pub season: i8,
    /// Typical price in the data's scaled units × 590 (roughly the shop price).
    pub price: f32,
    /// Relative share of the catalogue.
    pub share: f32,
    /// Product groups this type is bought together with.
    pub complements: &'static [&'static str],
}

const UP: &[&str] = &["Garment Lower body", "Shoes", "Accessories"];
const LOW: &[&str] = &["Garment Upper body", "Shoes", "Accessories"];
const FULL: &[&str] = &["Shoes", "Accessories", "Socks & Tights"];
const SHOE: &[&str] = &["Garment Lower body", "Socks & Tights", "Garment Full body"];
const ACC: &[&str] = &["Garment Upper body", "Garment Full body", "Accessories"];
const UNDER: &[&str] = &["Underwear", "Nightwear", "Socks & Tights"];
const SWIM: &[&str] = &["Swimwear", "Accessories"];
const NIGHT: &[&str] = &["Nightwear", "Underwear"];
const SOCK: &[&str] = &["Shoes", "Underwear", "Garment Lower body"];
const MISC: &[&str] = &["Accessories"];

macro_rules! t {
    ($n:expr, $g:expr, $gg:expr, $s:expr, $p:expr, $sh:expr, $c:expr) => {
        TypeSpec { name: $n, group: $g, garment_group: $gg, season: $s, price: $p, share: $sh, complements: $c }
    };
}

pub const TYPES: &[TypeSpec] = &[
    t!("T-shirt", "Garment Upper body", "Jersey Basic", 1, 9.99, 6.0, UP),
    t!("Top", "Garment Upper body", "Jersey Fancy", 1, 12.99, 5.0, UP),
    t!("Vest top", "Garment Upper body", "Jersey Basic", 1, 7.99, 3.5, UP),
    t!("Sweater", "Garment Upper body", "Knitwear", -1, 24.99, 6.5, UP),
    t!("Blouse", "Garment Upper body", "Blouses", 0, 19.99, 4.0, UP),
    t!("Shirt", "Garment Upper body", "Shirts", 0, 19.99, 2.5, UP),
    t!("Hoodie", "Garment Upper body", "Jersey Fancy", -1, 19.99, 2.0, UP),
    t!("Cardigan", "Garment Upper body", "Knitwear", -1, 24.99, 1.5, UP),
    t!("Jacket", "Garment Upper body", "Outdoor", -1, 39.99, 2.5, UP),
    t!("Blazer", "Garment Upper body", "Dressed", 0, 39.99, 1.0, UP),
    t!("Coat", "Garment Upper body", "Outdoor", -1, 59.99, 1.2, UP),
    t!("Polo shirt", "Garment Upper body", "Jersey Basic", 1, 14.99, 0.5, UP),
    t!("Bodysuit", "Garment Upper body", "Jersey Fancy", 0, 9.99, 1.0, UP),
    t!("Tailored Waistcoat", "Garment Upper body", "Dressed", 0, 29.99, 0.2, UP),
    t!("Trousers", "Garment Lower body", "Trousers", 0, 24.99, 8.0, LOW),
    t!("Shorts", "Garment Lower body", "Shorts", 1, 14.99, 3.0, LOW),
    t!("Skirt", "Garment Lower body", "Skirts", 1, 19.99, 2.5, LOW),
    t!("Leggings/Tights", "Garment Lower body", "Jersey Basic", 0, 9.99, 1.5, LOW),
    t!("Outdoor trousers", "Garment Lower body", "Outdoor", -1, 29.99, 0.3, LOW),
    t!("Dress", "Garment Full body", "Dresses Ladies", 1, 29.99, 8.0, FULL),
    t!("Jumpsuit/Playsuit", "Garment Full body", "Dressed", 1, 29.99, 1.2, FULL),
    t!("Dungarees", "Garment Full body", "Trousers Denim", 0, 24.99, 0.4, FULL),
    t!("Garment Set", "Garment Full body", "Woven/Jersey/Knitted mix Baby", 0, 19.99, 1.5, FULL),
    t!("Outdoor overall", "Garment Full body", "Outdoor", -1, 39.99, 0.2, FULL),
    t!("Bag", "Accessories", "Accessories", 0, 19.99, 1.5, ACC),
    t!("Hat/beanie", "Accessories", "Accessories", -1, 9.99, 1.2, ACC),
    t!("Scarf", "Accessories", "Accessories", -1, 12.99, 1.0, ACC),
    t!("Earring", "Accessories", "Accessories", 0, 6.99, 1.8, ACC),
    t!("Necklace", "Accessories", "Accessories", 0, 7.99, 0.6, ACC),
    t!("Belt", "Accessories", "Accessories", 0, 9.99, 0.5, ACC),
    t!("Sunglasses", "Accessories", "Accessories", 1, 9.99, 0.6, ACC),
    t!("Hair clip", "Accessories", "Accessories", 0, 4.99, 0.5, ACC),
    t!("Hair string", "Accessories", "Accessories", 0, 3.99, 0.5, ACC),
    t!("Gloves", "Accessories", "Accessories", -1, 9.99, 0.4, ACC),
    t!("Cap/peaked", "Accessories", "Accessories", 1, 9.99, 0.4, ACC),
    t!("Hair/alice band", "Accessories", "Accessories", 0, 4.99, 0.3, ACC),
    t!("Bracelet", "Accessories", "Accessories", 0, 5.99, 0.2, ACC),
    t!("Ring", "Accessories", "Accessories", 0, 5.99, 0.2, ACC),
    t!("Wallet", "Accessories", "Accessories", 0, 9.99, 0.1, ACC),
    t!("Watch", "Accessories", "Accessories", 0, 19.99, 0.1, ACC),
    t!("Umbrella", "Accessories", "Accessories", -1, 9.99, 0.05, ACC),
    t!("Tie", "Accessories", "Accessories", 0, 9.99, 0.05, ACC),
    t!("Underwear bottom", "Underwear", "Under-, Nightwear", 0, 5.99, 3.5, UNDER),
    t!("Bra", "Underwear", "Under-, Nightwear", 0, 14.99, 2.5, UNDER),
    t!("Underwear body", "Underwear", "Under-, Nightwear", 0, 14.99, 0.3, UNDER),
    t!("Underwear Tights", "Socks & Tights", "Socks and Tights", -1, 7.99, 0.6, SOCK),
    t!("Socks", "Socks & Tights", "Socks and Tights", 0, 4.99, 1.5, SOCK),
    t!("Sneakers", "Shoes", "Shoes", 0, 24.99, 0.8, SHOE),
    t!("Boots", "Shoes", "Shoes", -1, 39.99, 0.7, SHOE),
    t!("Sandals", "Shoes", "Shoes", 1, 19.99, 0.5, SHOE),
    t!("Ballerinas", "Shoes", "Shoes", 1, 19.99, 0.2, SHOE),
    t!("Heeled sandals", "Shoes", "Shoes", 1, 24.99, 0.2, SHOE),
    t!("Flat shoe", "Shoes", "Shoes", 0, 19.99, 0.3, SHOE),
    t!("Slippers", "Shoes", "Shoes", -1, 9.99, 0.2, SHOE),
    t!("Other shoe", "Shoes", "Shoes", 0, 19.99, 0.4, SHOE),
    t!("Bikini top", "Swimwear", "Swimwear", 1, 12.99, 1.0, SWIM),
    t!("Swimwear bottom", "Swimwear", "Swimwear", 1, 9.99, 1.1, SWIM),
    t!("Swimsuit", "Swimwear", "Swimwear", 1, 24.99, 0.5, SWIM),
    t!("Sarong", "Swimwear", "Swimwear", 1, 12.99, 0.1, SWIM),
    t!("Pyjama set", "Nightwear", "Under-, Nightwear", -1, 19.99, 0.8, NIGHT),
    t!("Night gown", "Nightwear", "Under-, Nightwear", 0, 14.99, 0.2, NIGHT),
    t!("Pyjama bottom", "Nightwear", "Under-, Nightwear", 0, 9.99, 0.2, NIGHT),
    t!("Robe", "Nightwear", "Under-, Nightwear", -1, 24.99, 0.1, NIGHT),
    t!("Unknown", "Unknown", "Unknown", 0, 9.99, 0.1, MISC),
    t!("Giftbox", "Items", "Special Offer", -1, 9.99, 0.05, MISC),
    t!("Waterbottle", "Items", "Accessories", 1, 4.99, 0.03, MISC),
    t!("Cushion", "Interior textile", "Accessories", 0, 9.99, 0.02, MISC),
    t!("Sewing kit", "Garment and Shoe care", "Accessories", 0, 2.99, 0.02, MISC),
    t!("Zipper head", "Garment and Shoe care", "Accessories", 0, 1.99, 0.01, MISC),
    t!("Marker pen", "Stationery", "Accessories", 0, 2.99, 0.01, MISC),
    t!("Toy", "Fun", "Accessories", 0, 4.99, 0.01, MISC),
    t!("Bumbag", "Bags", "Accessories", 0, 12.99, 0.05, MISC),
    t!("Chem. cosmetics", "Cosmetic", "Accessories", 0, 4.99, 0.02, MISC),
    t!("Clothing mist", "Furniture", "Accessories", 0, 6.99, 0.01, MISC),
];

/// (code, name, index group no, index group name, mean customer age, spread).
pub const INDEXES: &[(&str, &str, i32, &str, f32, f32)] = &[
    ("A", "Ladieswear", 1, "Ladieswear", 42.0, 12.0),
    ("B", "Lingeries/Tights", 1, "Ladieswear", 36.0, 13.0),
    ("C", "Ladies Accessories", 1, "Ladieswear", 30.0, 12.0),
    ("D", "Divided", 2, "Divided", 22.0, 5.0),
    ("F", "Menswear", 3, "Menswear", 33.0, 12.0),
    ("G", "Baby Sizes 50-98", 4, "Baby/Children", 31.0, 6.0),
    ("H", "Children Sizes 92-140", 4, "Baby/Children", 38.0, 7.0),
    ("I", "Children Sizes 134-170", 4, "Baby/Children", 44.0, 7.0),
    ("J", "Children Accessories, Swimwear", 4, "Baby/Children", 38.0, 8.0),
    ("S", "Sport", 26, "Sport", 29.0, 10.0),
];

/// Relative catalogue share of each index.
pub const INDEX_SHARE: &[f32] = &[3.0, 1.2, 1.0, 1.5, 1.2, 0.9, 1.0, 0.7, 0.5, 0.3];

pub const SECTION_WORDS: &[&str] =
    &["Collection", "Basics", "Trend", "Premium", "Casual", "Everyday", "Special", "Studio", "Edition"];

pub const DEPARTMENT_SUFFIXES: &[&str] = &["Basic", "Trend", "Fancy", "Shape", "Light", "Heavy", "Jersey", "Woven"];

/// (colour group name, perceived colour value, perceived colour master, relative popularity).
pub const COLOURS: &[(&str, &str, &str, f32)] = &[
    ("Black", "Dark", "Black", 22.0),
    ("White", "Light", "White", 9.0),
    ("Off White", "Dusty Light", "White", 3.0),
    ("Light Beige", "Dusty Light", "Beige", 3.5),
    ("Beige", "Medium Dusty", "Beige", 2.5),
    ("Dark Beige", "Medium Dusty", "Beige", 1.0),
    ("Grey", "Medium", "Grey", 3.0),
    ("Light Grey", "Light", "Grey", 1.5),
    ("Dark Grey", "Dark", "Grey", 2.5),
    ("Greyish Beige", "Medium Dusty", "Mole", 1.0),
    ("Yellowish Brown", "Medium Dusty", "Brown", 1.0),
    ("Light Orange", "Light", "Orange", 0.6),
    ("Orange", "Bright", "Orange", 0.7),
    ("Dark Orange", "Dark", "Orange", 0.5),
    ("Light Yellow", "Light", "Yellow", 0.6),
    ("Yellow", "Bright", "Yellow", 0.8),
    ("Dark Yellow", "Medium Dusty", "Yellow", 0.5),
    ("Yellowish Green", "Medium", "Yellowish Green", 0.4),
    ("Light Green", "Light", "Green", 0.6),
    ("Green", "Medium", "Green", 0.8),
    ("Dark Green", "Dark", "Khaki green", 1.5),
    ("Greenish Khaki", "Medium Dusty", "Khaki green", 0.9),
    ("Light Turquoise", "Light", "Turquoise", 0.4),
    ("Turquoise", "Bright", "Turquoise", 0.4),
    ("Dark Turquoise", "Dark", "Turquoise", 0.3),
    ("Light Blue", "Light", "Blue", 3.0),
    ("Blue", "Medium", "Blue", 4.0),
    ("Dark Blue", "Dark", "Blue", 9.0),
    ("Other Blue", "Medium", "Blue", 0.3),
    ("Light Purple", "Light", "Lilac Purple", 0.6),
    ("Purple", "Medium", "Lilac Purple", 0.4),
    ("Dark Purple", "Dark", "Lilac Purple", 0.3),
    ("Other Purple", "Medium", "Lilac Purple", 0.1),
    ("Light Pink", "Light", "Pink", 3.5),
    ("Pink", "Medium", "Pink", 2.0),
    ("Dark Pink", "Dark", "Pink", 0.6),
    ("Other Pink", "Medium", "Pink", 0.2),
    ("Light Red", "Light", "Red", 0.4),
    ("Red", "Bright", "Red", 2.0),
    ("Dark Red", "Dark", "Red", 1.5),
    ("Other Red", "Medium", "Red", 0.1),
    ("Other Orange", "Medium", "Orange", 0.1),
    ("Other Yellow", "Medium", "Yellow", 0.1),
    ("Other Green", "Medium", "Green", 0.1),
    ("Other Turquoise", "Medium", "Turquoise", 0.1),
    ("Gold", "Bright", "Metal", 0.7),
    ("Silver", "Bright", "Metal", 0.6),
    ("Bronze/Copper", "Medium", "Metal", 0.1),
    ("Transparent", "Undefined", "undefined", 0.1),
    ("Other", "Undefined", "undefined", 0.1),
];

pub const PERCEIVED_VALUES: &[&str] = &["Dark", "Dusty Light", "Light", "Medium Dusty", "Bright", "Medium", "Undefined"];
pub const PERCEIVED_MASTERS: &[&str] = &[
    "Black", "White", "Beige", "Grey", "Mole", "Brown", "Orange", "Yellow", "Yellowish Green", "Green",
    "Khaki green", "Turquoise", "Blue", "Lilac Purple", "Pink", "Red", "Metal", "undefined",
];

pub const APPEARANCES: &[(&str, f32)] = &[
    ("Solid", 50.0),
    ("All over pattern", 16.0),
    ("Melange", 6.0),
    ("Stripe", 5.0),
    ("Denim", 4.5),
    ("Lace", 1.5),
    ("Check", 1.5),
    ("Embroidery", 1.0),
    ("Front print", 4.0),
    ("Jacquard", 0.6),
    ("Placement print", 2.5),
    ("Dot", 0.7),
    ("Mixed solid/pattern", 1.5),
    ("Glittering/Metallic", 0.5),
    ("Colour blocking", 0.5),
    ("Other pattern", 0.8),
    ("Application/3D", 0.7),
    ("Chambray", 0.2),
    ("Contrast", 0.5),
    ("Treatment", 0.3),
    ("Other structure", 0.7),
    ("Sequin", 0.4),
    ("Slub", 0.2),
    ("Mesh", 0.2),
    ("Neps", 0.1),
    ("Metallic", 0.1),
    ("Argyle", 0.05),
    ("Hologram", 0.02),
    ("Transparent", 0.1),
];

pub const NAME_SYLLABLES: &[&str] = &[
    "ka", "li", "mo", "ra", "ti", "sa", "ne", "lo", "vi", "da", "mi", "ro", "ju", "el", "an", "be", "co", "ly", "no",
    "fe", "ma", "ri", "su", "ta", "ze", "ol", "ha", "pe", "ki", "lu",
];

pub const FITS: &[&str] = &["Fitted", "Relaxed-fit", "Oversized", "Regular-fit", "Slim-fit", "Loose-fit", "Short", "Long"];
pub const MATERIALS: &[&str] = &[
    "soft cotton jersey", "fine-knit viscose", "washed denim", "woven fabric", "ribbed jersey", "recycled polyester",
    "linen blend", "soft fleece", "stretch twill", "airy chiffon", "sturdy canvas", "lyocell blend", "faux leather",
];
pub const FEATURES: &[&str] = &[
    "a round neckline", "long sleeves", "short sleeves", "a V-neck", "buttons down the front", "side pockets",
    "an elasticated waist", "a concealed zip", "dropped shoulders", "a wrapover front", "narrow shoulder straps",
    "a collar", "cuffs", "a drawstring", "a regular waist", "a high waist", "slits in the sides", "a lined front",
    "adjustable straps", "a rounded hem", "a press-stud", "a hood", "a chest pocket", "flared legs",
];
